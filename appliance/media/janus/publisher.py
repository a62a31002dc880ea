"""The kit's one published stream in a Janus VideoRoom: microphone and camera on one
send-only PeerConnection, whatever the room's size.

The publisher handle is also how the kit hears of the room: Janus tells every participant's
publisher handle when feeds appear (``publishers``) and go (``unpublished``, ``leaving``),
and when the room itself is destroyed.

A camera that encodes H.264 itself offers H.264 only, so Janus (whose room accepts VP8 and
H.264, preferring VP8) takes the camera's packets as they are and relays them untouched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from appliance.media.consent import keep_consent_patiently
from appliance.media.datagrams import read_all_waiting
from appliance.media.janus.api import JanusError, JanusHandle, jsep_of
from appliance.media.local import LocalMedia, Warn

# The sender hooks that feed the negotiated codec and key frame requests to the camera's
# track are the mesh peers' too: one implementation for both backends.
from appliance.media.outgoing import follow_sender
from appliance.media.outgoing_audio import follow_audio_sender
from appliance.signaling.messages import JanusRoomAccess

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        handle: JanusHandle,
        access: JanusRoomAccess,
        *,
        uid: str,
        local: LocalMedia,
        ice_servers: list[RTCIceServer],
        video_codec: str | None,
        warn: Warn,
    ) -> None:
        self.handle = handle
        self._warn = warn
        self._access = access
        self._uid = uid
        self._local = local
        self._ice_servers = ice_servers
        self._video_codec = video_codec
        self._lock = asyncio.Lock()
        self.pc: RTCPeerConnection | None = None
        self.feed_id: int | None = None
        self.private_id: int | None = None

    async def join(self) -> list[dict[str, Any]]:
        """Joins the room as this kit (display = uid); the feeds already published."""
        reply = await self.handle.message(
            {
                "request": "join",
                "ptype": "publisher",
                "room": self._access.room,
                "pin": self._access.pin,
                "token": self._access.token,
                "display": self._uid,
            }
        )
        if reply.data.get("videoroom") != "joined":
            raise JanusError(0, f"unexpected answer to join: {reply.data!r:.200}")
        self.feed_id = int(reply.data["id"])
        self.private_id = int(reply.data["private_id"])
        publishers = reply.data.get("publishers") or []
        return [p for p in publishers if isinstance(p, dict)]

    async def publish(self, *, video: bool) -> None:
        async with self._lock:
            pc = RTCPeerConnection(
                RTCConfiguration(
                    iceServers=list(self._ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
                )
            )
            self.pc = pc
            pc.on("connectionstatechange", self._state_changed)
            audio = self._local.audio_track()
            follow_audio_sender(pc.addTransceiver(audio, direction="sendonly").sender, audio)
            if video:
                self._add_video(pc)
            await self._negotiate("publish")

    async def add_video(self) -> None:
        """The call became a video call: renegotiate with a video line added."""
        async with self._lock:
            pc = self.pc
            if pc is None or any(t.kind == "video" for t in pc.getTransceivers()):
                return
            self._add_video(pc)
            await self._negotiate("configure")

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()

    def _add_video(self, pc: RTCPeerConnection) -> None:
        track = self._local.video_track()
        transceiver = pc.addTransceiver(track, direction="sendonly")
        self._prefer_codec(transceiver)
        follow_sender(transceiver.sender, track)

    def _prefer_codec(self, transceiver: RTCRtpTransceiver) -> None:
        if self._video_codec:
            wanted = f"video/{self._video_codec}".lower()
        elif self._local.prefers_h264:
            wanted = "video/h264"
        else:
            return  # the room's preference (VP8) decides
        codecs = RTCRtpSender.getCapabilities("video").codecs
        chosen = [c for c in codecs if c.mimeType.lower() in (wanted, "video/rtx")]
        transceiver.setCodecPreferences(chosen)

    async def _negotiate(self, request: str) -> None:
        pc = self.pc
        assert pc is not None
        await pc.setLocalDescription(await pc.createOffer())
        read_all_waiting(pc)  # its sockets are gathered now
        body: dict[str, Any] = {"request": request, "audiocodec": "opus"}
        if any(t.kind == "video" for t in pc.getTransceivers()):
            if self._video_codec:
                body["videocodec"] = self._video_codec.lower()
            elif self._local.prefers_h264:
                body["videocodec"] = "h264"
        reply = await self.handle.message(body, jsep_of(pc.localDescription))
        answer = reply.jsep
        if answer is None or answer.get("type") != "answer":
            raise JanusError(0, f"Janus sent no answer to {request}: {reply.data!r:.200}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        keep_consent_patiently(pc)

    def _state_changed(self) -> None:
        if self.pc is None:
            return
        state = self.pc.connectionState
        log.info("publisher connection is %s", state)
        if state == "failed":
            self._warn("media-failed", "network", "the connection sending to Janus failed")
