"""The call's media: our camera and microphone, what arrives from the others, and the
backend that carries it between kits: peer to peer (``MeshMedia``), or a Janus VideoRoom
(``JanusRoomMedia``) when the server's ``Joined`` says so.

The media stack (aiortc, its codecs, DTLS and SRTP: some 20 MiB) loads with a kit's first
call, not when it starts. ``load_media_stack`` imports it in a worker thread before the
call builds its media: on the event loop that import held every other task for 0.4 s on a
fast x86 core, a second or more on a Pi, and past the session server's ping timeout in an
emulated kit."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.audio.settings import RoomAudioConfig
from appliance.calls.joining import ReleaseStep
from appliance.media.counters import MediaCounters
from appliance.media.levels import SILENCE_DBFS
from appliance.signaling.messages import Joined, Participant, SignalOut
from hal.audio.base import AudioError, AudioOutput
from hal.camera.base import VideoFormat
from hal.registry import Hardware

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCIceServer

    from appliance.audio.stage import ProcessingStage
    from appliance.media.backend import MediaBackend
    from appliance.media.peer import Health, LinkStats, Peer
    from appliance.media.view import View


@dataclass(frozen=True)
class MediaOptions:
    video_format: VideoFormat = field(default_factory=VideoFormat)
    ice_servers: tuple[RTCIceServer, ...] = ()
    video_codec: str | None = None  # "VP8" or "H264" to force one; None lets SDP decide
    recordings_dir: Path = Path("recordings")
    audio: RoomAudioConfig = field(default_factory=RoomAudioConfig)
    state_dir: Path | None = None  # where measured echo delays are kept; None: memory only


# Imported by the first call, off the event loop (every module a call builds media with).
MEDIA_MODULES = (
    "appliance.media.local",
    "appliance.media.remote",
    "appliance.media.backend",
    "appliance.media.peer",
    "appliance.media.mesh",
    "appliance.media.janus.room",
)


async def load_media_stack() -> None:
    """Imports the media stack in a worker thread, so the loop keeps serving meanwhile (a
    no-op once loaded). Python's import locks make a module the loop imports meanwhile
    wait for this thread, never import twice."""
    missing = [name for name in MEDIA_MODULES if name not in sys.modules]
    if missing:
        await asyncio.to_thread(_import_all, missing)


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)


class CallStreams:
    def __init__(
        self,
        hardware: Hardware,
        options: MediaOptions,
        view: View | None,
        *,
        warn: Callable[[str, str, str], None],
        on_camera_change: Callable[[bool], None],
        on_output_failed: Callable[[AudioOutput, AudioError], None],
        processing: ProcessingStage | None,
        counters: MediaCounters,
    ) -> None:
        from appliance.media.local import LocalMedia
        from appliance.media.remote import AudioMixer, RemoteVideo

        self._options = options
        self._warn = warn
        self._counters = counters
        self.local = LocalMedia(
            hardware.cameras,
            hardware.microphone,
            options.video_format,
            view,
            warn,
            on_camera_change=on_camera_change,
            processing=processing,
            counters=counters,
        )
        self.mixer = AudioMixer(
            on_output_failed=on_output_failed, playback=processing, counters=counters
        )
        self.remote_video = RemoteVideo(view, counters)
        self.backend: MediaBackend | None = None  # chosen once the server said how
        self._camera_start: asyncio.Task[None] | None = None

    def open_camera_early(self, wanted: bool) -> None:
        """The camera opens while the server answers the join (a Pi's camera takes a few
        hundred ms to start, a round trip to the server tens); ``settle_camera`` follows."""
        if wanted:
            self._camera_start = asyncio.create_task(self.local.enable_video(), name="camera")

    async def settle_camera(self, video: bool | None) -> None:
        """The join's answer: whether this call sends our video (None: the join failed,
        and the teardown closes what opened)."""
        start, self._camera_start = self._camera_start, None
        if video is None:
            if start is not None:
                await asyncio.gather(start, return_exceptions=True)
        elif start is not None:
            await start
            if not video:  # a rejoin into a call that is still audio-only
                await self.local.disable_video()
        elif video:
            await self.local.enable_video()

    def choose_backend(
        self,
        joined: Joined,
        *,
        send: Callable[[SignalOut], Awaitable[None]],
        can_signal: Callable[[], bool],
        wanted: Callable[[str], bool],
        on_health: Callable[[str, Health], None],
        on_failed: Callable[[str, str], None],
    ) -> MediaBackend:
        """``wanted``: whether a track from this uid is one we take (a participant's);
        ``on_failed(code, reason)``: the media cannot come back."""
        from appliance.media.janus.room import JanusRoomMedia
        from appliance.media.mesh import MeshMedia

        def on_track(uid: str, track: MediaStreamTrack) -> None:
            if wanted(uid):
                self._add_track(uid, track)

        options = self._options
        backend: MediaBackend
        if joined.media is not None:
            backend = JanusRoomMedia(
                joined.media,
                uid=joined.you.uid,
                local=self.local,
                on_track=on_track,
                on_failed=lambda reason: on_failed("media-server-lost", reason),
                warn=self._warn,
                ice_servers=list(options.ice_servers),
                video_codec=options.video_codec,
            )
        else:
            backend = MeshMedia(
                me=joined.you.uid,
                local=self.local,
                send=send,
                can_signal=can_signal,
                on_track=on_track,
                on_health=on_health,
                on_failed=lambda reason: on_failed("connection-lost", reason),
                warn=self._warn,
                ice_servers=list(options.ice_servers),
                video_codec=options.video_codec,
                counters=self._counters,
            )
        self.backend = backend
        return backend

    def _add_track(self, uid: str, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.mixer.add_track(uid, track)
        elif track.kind == "video":
            self.remote_video.add_track(uid, track)

    def connect(self, participant: Participant, *, offerer: bool, video: bool) -> None:
        if self.backend is not None:
            self.backend.add_participant(participant.uid, offerer=offerer, video=video)

    async def release(self, uid: str) -> None:
        self.mixer.remove(uid)
        self.remote_video.remove(uid)
        if self.backend is not None:
            await self.backend.remove_participant(uid)

    def release_steps(self, *, unbind_output: Callable[[], Awaitable[None]]) -> list[ReleaseStep]:
        """What the teardown releases, in order: the output is let go once the mixer
        stopped feeding it."""
        steps: list[ReleaseStep] = []
        if self.backend is not None:
            steps.append(("the peer connections", self.backend.close))
        steps += [
            ("the mixer", self.mixer.stop),
            ("the audio output", unbind_output),
            ("the remote video", self.remote_video.stop),
            ("the camera and microphone", self.local.stop),
        ]
        return steps

    # --- what differs between the backends: each answers for itself ----------------------

    @property
    def peer_to_peer(self) -> bool:
        return self.backend is not None and self.backend.peer_to_peer

    @property
    def peers(self) -> dict[str, Peer]:
        """The mesh's peer connections by uid (none when a media server carries the call)."""
        return self.backend.peers if self.backend is not None else {}

    def receiving_from(self, uid: str) -> bool:
        """Whether media still arrives from them (known on a mesh only)."""
        return self.backend is not None and self.backend.receiving_from(uid)

    def signaling_restored(self) -> None:
        if self.backend is not None:
            self.backend.signaling_restored()

    def links(self) -> dict[str, LinkStats]:
        """Per other participant, its mesh connection's figures (none on a media server)."""
        return self.backend.links() if self.backend is not None else {}

    def stats(self, uids: list[str]) -> dict[str, dict[str, Any]]:
        """Per participant, what arrives from them."""
        links = self.links()
        now = asyncio.get_running_loop().time()
        stats: dict[str, dict[str, Any]] = {}
        for uid in uids:
            level = self.mixer.levels.get(uid)
            link = links.get(uid)
            last = link.last_received if link is not None else None
            stats[uid] = {
                "video_frames": self.remote_video.frames.get(uid, 0),
                "audio_level_dbfs": round(level.dbfs if level else SILENCE_DBFS, 1),
                "connection": link.state.value if link else None,
                "restarts": link.restarts if link else None,
                "packets_received": link.packets_received if link else None,
                "packets_lost": link.packets_lost if link else None,
                "last_received_s": round(now - last, 2) if last is not None else None,
            }
        return stats
