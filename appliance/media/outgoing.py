"""What one peer's video sender reads: the camera's own H.264 when that can go out as it is,
frames for aiortc to encode otherwise.

A camera with a hardware encoder (a Pi 4's) gives H.264 packets and, beside them, small frames.
A peer that negotiated H.264 gets the packets untouched (aiortc packs pre-encoded packets
without decoding or re-encoding); a peer on another codec gets the frames. Which one a peer
gets is decided when its sender starts (the negotiated codec) and again whenever the camera
in use changes (switching to a USB camera that gives frames only).

H.264 levels (``h264_levels``): packets pass through only when the camera's mode fits the
level the peer declared it can receive; their SPS then says the level the mode needs, not
the encoder's 4.0, when the peer declared less. A mode beyond the peer's level goes as
frames.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from appliance.media.counters import MediaCounters
from appliance.media.h264_levels import declared_level, relabel_sps, sps_level

H264 = "video/h264"
FRAME_QUEUE = 2  # frames: the newest matter, older ones are dropped
PACKET_QUEUE = 30  # packets: one dropped breaks the picture until the next key frame


class OutgoingVideo(MediaStreamTrack):
    """One peer's outgoing video. The local media pump pushes everything the camera makes;
    this track keeps what its peer needs.

    Packets pass through only from a key frame on: when the peer starts, after the camera
    changes, and after packets had to be dropped, it asks for a key frame
    (``request_keyframe``) and skips packets until one comes. A PLI/FIR from the peer
    (``keyframe_requested``) asks the camera only while packets pass through; otherwise
    aiortc's own encoder answers it."""

    kind = "video"

    def __init__(
        self,
        request_keyframe: Callable[[], None],
        counters: MediaCounters | None = None,
    ) -> None:
        super().__init__()
        self._request_keyframe = request_keyframe
        self._counters = counters if counters is not None else MediaCounters()
        self._codec: str | None = None  # the sender's codec, once it has started
        self._camera_packets = False  # the camera in use gives H.264 packets
        self._peer_level: int | None = None  # the H.264 level the peer can receive
        self._stream_level: int | None = None  # the level the camera's mode needs
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._awaiting_keyframe = True
        self.keyframe_requests = 0
        self.packets_sent = 0
        self.frames_sent = 0

    @property
    def codec(self) -> str | None:
        return self._codec

    @property
    def passes_packets(self) -> bool:
        return self._codec == H264 and self._camera_packets and self.level_fits

    @property
    def level_fits(self) -> bool:
        """The camera's mode is within the H.264 level the peer declared (unknown: yes)."""
        peer, stream = self._peer_level, self._stream_level
        return peer is None or stream is None or stream <= peer

    # --- told by the peer and the camera pump ---------------------------------------------

    def use_codec(self, mime_type: str) -> None:
        """The sender starts with this codec ("video/H264", "video/VP8")."""
        self._changing(lambda: setattr(self, "_codec", mime_type.lower()))

    def set_peer_level(self, level: int | None) -> None:
        """The H.264 level the peer's SDP declared it can receive."""
        self._changing(lambda: setattr(self, "_peer_level", level))

    def set_stream_level(self, level: int | None) -> None:
        """The H.264 level the camera's mode needs."""
        self._changing(lambda: setattr(self, "_stream_level", level))

    def set_camera_packets(self, packets: bool) -> None:
        """The camera now in use gives H.264 packets (True) or frames (False)."""
        self._changing(lambda: setattr(self, "_camera_packets", packets))

    def keyframe_requested(self) -> None:
        """The peer lost the picture (RTCP PLI or FIR)."""
        if self.passes_packets:
            self._ask_for_keyframe()

    def _changing(self, change: Callable[[], None]) -> None:
        before = self.passes_packets
        change()
        if self.passes_packets != before:
            self._queue.clear()
            if self.passes_packets:
                self._awaiting_keyframe = True
                self._ask_for_keyframe()

    def _ask_for_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._request_keyframe()

    # --- media in -------------------------------------------------------------------------

    def push_frame(self, frame: av.VideoFrame) -> None:
        # Frames until told otherwise: a sender nobody follows gets what aiortc can encode.
        if self.readyState != "live" or self.passes_packets:
            return
        self._queue.append(frame)
        while len(self._queue) > FRAME_QUEUE:
            self._queue.popleft()
            self._counters.frames_dropped += 1
        self._wake()

    def push_packet(self, packet: av.Packet[Any]) -> None:
        if self.readyState != "live" or not self.passes_packets:
            return
        if self._awaiting_keyframe:
            if not packet.is_keyframe:
                return
            self._awaiting_keyframe = False
        if len(self._queue) >= PACKET_QUEUE:  # the sender stalled: start again from a key frame
            self._counters.frames_dropped += len(self._queue)
            self._queue.clear()
            self._awaiting_keyframe = True
            self._ask_for_keyframe()
            return
        self._queue.append(self._within_level(packet))
        self._wake()

    def _within_level(self, packet: av.Packet[Any]) -> av.Packet[Any]:
        """The packet, with its SPS relabelled at the mode's level when the encoder's is
        above what the peer declared (the packet is shared with other peers: a copy)."""
        peer = self._peer_level
        if peer is None or not packet.is_keyframe:
            return packet
        data = bytes(packet)
        level = sps_level(data)
        if level is None or level <= peer:
            return packet
        relabelled = av.Packet(relabel_sps(data, self._stream_level or peer))
        relabelled.pts, relabelled.dts = packet.pts, packet.dts
        relabelled.time_base = packet.time_base
        relabelled.is_keyframe = True
        return relabelled

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- media out ------------------------------------------------------------------------

    async def recv(self) -> Any:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        item = self._queue.popleft()
        if isinstance(item, av.Packet):
            self.packets_sent += 1
        else:
            self.frames_sent += 1
        return item

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self._queue.clear()
            self._wake()


def follow_sender(
    sender: Any, track: OutgoingVideo, remote_sdp: Callable[[], str | None] = lambda: None
) -> None:
    """Tell ``track`` the codec ``sender`` (an aiortc RTCRtpSender) starts with (the first
    of the negotiated codecs, which aiortc's sender uses), the H.264 level the peer declared
    for it in its SDP (``remote_sdp``), and every key frame request (PLI/FIR) the peer
    sends: aiortc answers those by flagging its own encoder, which pre-encoded packets
    bypass. Call it for each sender an OutgoingVideo is given to."""
    start = sender.send
    send_keyframe = sender._send_keyframe

    async def send(parameters: Any) -> None:
        if parameters.codecs:
            codec = parameters.codecs[0]
            if codec.mimeType.lower() == H264:
                track.set_peer_level(declared_level(remote_sdp(), codec.payloadType))
            track.use_codec(codec.mimeType)
        await start(parameters)

    def keyframe_requested() -> None:
        send_keyframe()
        track.keyframe_requested()

    sender.send = send
    sender._send_keyframe = keyframe_requested
