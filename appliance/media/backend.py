"""How a session's media travels between kits: peer to peer (``MeshMedia``) or through a
media server (``JanusRoomMedia``). The session server decides per session and says which in
``Joined.media``; the call core drives either through this one interface, so participants,
events and local media work the same whichever carries the streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiortc import MediaStreamTrack

from appliance.signaling.messages import SignalIn

if TYPE_CHECKING:
    from appliance.media.peer import LinkStats, Peer

OnTrack = Callable[[str, MediaStreamTrack], None]  # (participant uid, remote track)
OnFailed = Callable[[str], None]  # the media transport is gone for good: why


class MediaUnavailable(Exception):
    """The media transport could not be set up (the media server refused or is away)."""


class MediaBackend(Protocol):
    async def start(self, *, video: bool) -> None:
        """Connect and start sending our microphone (and camera, with ``video``); raises
        ``MediaUnavailable`` when that cannot be done."""

    def add_participant(self, uid: str, *, offerer: bool, video: bool) -> None:
        """``uid`` takes part; ``offerer``: they were there before us (in a mesh, the
        newcomer makes the first offer)."""

    async def remove_participant(self, uid: str) -> None:
        """``uid`` left: stop receiving from it."""

    async def handle_signal(self, message: SignalIn) -> None:
        """An offer, answer or candidate another participant sent through the server."""

    async def enable_video(self) -> None:
        """The audio call became a video call: start sending the camera too."""

    async def close(self) -> None:
        """Stop all media; connections close."""

    # --- what only a mesh knows: a media server answers empty or no ----------------------

    @property
    def peer_to_peer(self) -> bool:
        """Whether the media flows directly between kits (each connection watched here)."""

    @property
    def peers(self) -> dict[str, Peer]:
        """The peer connections by uid (none when a media server carries the call)."""

    def links(self) -> dict[str, LinkStats]:
        """Per other participant, its connection's figures (none on a media server)."""

    def receiving_from(self, uid: str) -> bool:
        """Whether media still arrives from ``uid`` on its own connection (known on a
        mesh only: a media server answers False)."""

    def signaling_restored(self) -> None:
        """Signaling is back (we rejoined): renew what waited for it, if anything."""
