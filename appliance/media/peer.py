"""The WebRTC connection to one other participant of a mesh call.

For each pair of kits the newcomer offers and the one already there answers; later
renegotiations (audio call upgraded to video) come from the same side, so two offers
never cross.

When the kit's camera encodes H.264 itself, H.264 goes first in the codec preferences, so
any peer that can take it gets the camera's packets as they are; a peer that cannot ends up
on VP8 and gets frames. Each video sender tells its OutgoingVideo the codec it started with,
and passes PLI/FIR on to it, since aiortc only forwards those to its own encoder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from appliance.media.local import LocalMedia
from appliance.media.outgoing import follow_sender
from appliance.signaling.messages import Candidate, Description

log = logging.getLogger(__name__)


SendSignal = Callable[[Description | None, Candidate | None], Awaitable[None]]


class Peer:
    def __init__(
        self,
        uid: str,
        *,
        offerer: bool,
        local: LocalMedia,
        send: SendSignal,
        on_track: Callable[[str, MediaStreamTrack], None],
        on_state: Callable[[str, str], None],
        ice_servers: list[RTCIceServer] | None = None,
        video_codec: str | None = None,
    ) -> None:
        self.uid = uid
        self.offerer = offerer
        self._local = local
        self._send = send
        self._video_codec = video_codec
        self._lock = asyncio.Lock()
        self._closed = False
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or []))
        self.pc.on("track", lambda track: on_track(uid, track))
        self.pc.on("connectionstatechange", lambda: on_state(uid, self.pc.connectionState))

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def start(self, *, video: bool) -> None:
        """Offerer only: add our tracks and send the first offer."""
        async with self._lock:
            self.pc.addTransceiver(self._local.audio_track(), direction="sendrecv")
            if video:
                self._add_video()
            await self._offer()

    async def add_video(self) -> None:
        """The call became a video call: the offerer renegotiates with a video line."""
        if not self.offerer or self._closed:
            return
        async with self._lock:
            if any(t.kind == "video" for t in self.pc.getTransceivers()):
                return
            self._add_video()
            await self._offer()

    async def handle(self, description: Description | None, candidate: Candidate | None) -> None:
        async with self._lock:
            if self._closed:
                return
            if description is not None:
                await self._on_description(description)
            if candidate is not None and candidate.candidate:
                ice = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
                ice.sdpMid = candidate.sdpMid
                ice.sdpMLineIndex = candidate.sdpMLineIndex
                await self.pc.addIceCandidate(ice)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            await self.pc.close()

    # --- negotiation ---------------------------------------------------------------------

    def _add_video(self) -> None:
        track = self._local.video_track()
        transceiver = self.pc.addTransceiver(track, direction="sendrecv")
        self._prefer_codec(transceiver)
        follow_sender(transceiver.sender, track)

    def _prefer_codec(self, transceiver: object) -> None:
        codecs = RTCRtpSender.getCapabilities("video").codecs
        # Keep retransmission (rtx) for the chosen codecs: NACK recovery needs it.
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        if self._video_codec:
            wanted = f"video/{self._video_codec}".lower()
            preferred = [c for c in codecs if c.mimeType.lower() == wanted]
        elif self._local.prefers_h264:
            h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
            others = [c for c in codecs if c not in h264 and c not in rtx]
            preferred = h264 + others
        else:
            return
        transceiver.setCodecPreferences(preferred + rtx)  # type: ignore[attr-defined]

    async def _offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send_local_description()

    async def _on_description(self, description: Description) -> None:
        remote = RTCSessionDescription(sdp=description.sdp, type=description.type)
        if description.type == "offer":
            self._prepare_video_for(description.sdp)
        await self.pc.setRemoteDescription(remote)
        if description.type != "offer":
            return
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is not None or transceiver.stopped:
                continue
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(self._local.audio_track())
            elif transceiver.kind == "video":
                track = self._local.video_track()
                transceiver.sender.replaceTrack(track)
                self._prefer_codec(transceiver)
                follow_sender(transceiver.sender, track)
            transceiver.direction = "sendrecv"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send_local_description()

    def _prepare_video_for(self, offer: str) -> None:
        """Add our video transceiver for each new video line of an offer before applying it:
        aiortc picks the answer's codecs when the offer is applied, by the preferences of
        the transceiver it pairs with the line, and a transceiver it creates has none."""
        transceivers = self.pc.getTransceivers()
        known = {t.mid for t in transceivers if t.mid is not None}
        unpaired = sum(1 for t in transceivers if t.kind == "video" and t.mid is None)
        for media in SessionDescription.parse(offer).media:
            if media.kind != "video" or media.rtp.muxId in known:
                continue
            if unpaired:
                unpaired -= 1
            else:
                self._add_video()

    async def _send_local_description(self) -> None:
        local = self.pc.localDescription
        await self._send(Description(type=local.type, sdp=local.sdp), None)
