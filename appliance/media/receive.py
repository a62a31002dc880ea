"""RTP receive buffers that let media through as soon as it can be decoded.

aiortc's receivers buffer more than a call needs. Its audio buffer holds four packets
(80 ms of Opus) before it lets one out, and after a lost packet it waits until sixteen are
queued and then lets one out per packet that arrives, so the delay of a loss stays for the
rest of the call. Its video buffer lets a frame out only when the next frame's first packet
arrives: one frame period (33 ms at 30 fps) after the frame was complete.

``tune_receivers(pc)`` puts these buffers in their place on every receiver of a
connection (before media flows: on its "track" event):

- ``AudioPacketBuffer`` lets each packet out as it arrives, in order. A gap (a packet lost,
  or late) holds the packets behind it back until the missing one arrives or ``patience``
  of them are waiting; then the gap is given up and the waiting packets go out at once,
  repacked as one packet (Opus: several frames in one, RFC 6716 code 3), so nothing stays
  queued. ``patience`` follows the reordering measured: how far behind newer packets a late
  one arrived, recently. Jitter (packets late but in order) is the mixer's to ride out,
  in PCM (``remote.JitterBuffer``), by as much as it measures.
- ``VideoPacketBuffer`` is aiortc's video buffer that also counts a frame complete when
  its last packet (RTP marker bit) is in, as every WebRTC sender marks it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

log = logging.getLogger(__name__)

# aiortc's RTCRtpReceiver keeps its buffer in this (name-mangled) attribute, and its codecs
# by payload type in the other.
_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_CODECS = "_RTCRtpReceiver__codecs"

MAX_PATIENCE = 5  # packets (100 ms of 20 ms Opus) a gap may hold the audio back
REORDER_MEMORY = 500  # packets (10 s) over which a reordering is remembered
RESTART_JUMP = 1000  # a sequence number this far ahead: the sender started over
MAX_OPUS_MS = 120.0  # the longest Opus packet (RFC 6716 3.2.5)
MAX_OPUS_FRAMES = 48
# A video packet missing this long is given up (NACK had its round trip, twice over on a
# slow path) and a key frame asked for.
GAP_PATIENCE = 1.0


class AudioPacketBuffer:
    """Stands in for aiortc's ``JitterBuffer`` on an audio receiver: ``add(packet)`` returns
    (False, the next encoded frame or None). Each packet is one encoded frame."""

    capacity = 16  # read by nothing here; kept as aiortc's buffer has it

    def __init__(self, codecs: Mapping[int, RTCRtpCodecParameters] | None = None) -> None:
        self._codecs = codecs if codecs is not None else {}
        self._next: int | None = None  # the sequence number to let out next
        self._waiting: dict[int, RtpPacket] = {}
        self._count = 0  # packets added
        self._reorders: deque[tuple[int, int]] = deque()  # (when, how deep) recently
        self.given_up = 0  # packets never received, skipped over
        self.late = 0  # packets that came after their gap was given up (dropped)
        self.repacked = 0  # times several packets went out as one

    @property
    def patience(self) -> int:
        """Packets a gap may hold back: one more than the deepest recent reordering."""
        while self._reorders and self._reorders[0][0] < self._count - REORDER_MEMORY:
            self._reorders.popleft()
        deepest = max((depth for _, depth in self._reorders), default=0)
        return max(1, min(MAX_PATIENCE, deepest + 1))

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self._count += 1
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        ahead = uint16_add(seq, -self._next)
        if ahead >= 0x8000 and 0x10000 - ahead < RESTART_JUMP:
            # Older than what went out: its gap was given up. It came behind those let
            # out since and those waiting.
            self.late += 1
            self._reordered(0x10000 - ahead - 1 + len(self._waiting))
            return False, None
        if ahead >= RESTART_JUMP:  # far ahead or far behind: the sender started over
            self._waiting.clear()
            self._next = seq
        if seq in self._waiting:
            return False, None  # a duplicate
        newer = sum(1 for s in self._waiting if 0 < uint16_add(s, -seq) < 0x8000)
        if newer:  # it fills a gap, behind ``newer`` packets
            self._reordered(newer)
        self._waiting[seq] = packet
        return False, self._release()

    def _reordered(self, depth: int) -> None:
        self._reorders.append((self._count, depth))

    def _release(self) -> JitterFrame | None:
        ready = self._run()
        if not ready and self._next is not None and len(self._waiting) >= self.patience:
            start = self._next
            oldest = min(self._waiting, key=lambda s: uint16_add(s, -start))
            self.given_up += uint16_add(oldest, -start)
            self._next = oldest
            ready = self._run()
        return self._frame(ready) if ready else None

    def _run(self) -> list[RtpPacket]:
        """The packets from the next expected on, as far as they go without a gap."""
        ready = []
        while self._next is not None and self._next in self._waiting:
            ready.append(self._waiting.pop(self._next))
            self._next = uint16_add(self._next, 1)
        return ready

    def _frame(self, packets: list[RtpPacket]) -> JitterFrame:
        first = packets[0]
        datas: list[bytes] = [p._data for p in packets]  # type: ignore[attr-defined]
        if len(datas) == 1:
            return JitterFrame(data=datas[0], timestamp=first.timestamp)
        codec = self._codecs.get(first.payload_type)
        name = codec.name.lower() if codec is not None else "opus"
        data: bytes | None
        if name == "opus":
            data = combine_opus(datas)
        elif name in ("pcmu", "pcma"):
            data = b"".join(datas)  # G.711 bytes are samples: they simply follow on
        else:
            data = None
        if data is None:  # cannot be joined: the newest goes, the rest is lost
            self.given_up += len(datas) - 1
            return JitterFrame(data=datas[-1], timestamp=packets[-1].timestamp)
        self.repacked += 1
        return JitterFrame(data=data, timestamp=first.timestamp)


def opus_frame_ms(toc: int) -> float:
    """The duration of each frame of an Opus packet, from its TOC byte (RFC 6716 3.1)."""
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        return (10.0, 20.0, 40.0, 60.0)[config % 4]
    if config < 16:  # hybrid: 10, 20 ms
        return (10.0, 20.0)[config % 2]
    return (2.5, 5.0, 10.0, 20.0)[config % 4]  # CELT


def combine_opus(packets: list[bytes]) -> bytes | None:
    """One Opus packet (code 3, variable frame sizes) holding the single frames of
    ``packets`` in order, or None when they cannot be: not single-frame packets (code 0),
    not all of one configuration, or more than 120 ms in all."""
    if not packets or any(len(p) < 1 or p[0] & 0x03 for p in packets):
        return None
    toc = packets[0][0]
    if any(p[0] != toc for p in packets):
        return None
    if len(packets) > MAX_OPUS_FRAMES or opus_frame_ms(toc) * len(packets) > MAX_OPUS_MS:
        return None
    out = bytearray([toc | 0x03, 0x80 | len(packets)])  # VBR, no padding, M frames
    for packet in packets[:-1]:
        out += _opus_length(len(packet) - 1)
    for packet in packets:
        out += packet[1:]
    return bytes(out)


def _opus_length(length: int) -> bytes:
    if length < 252:
        return bytes([length])
    first = 252 + (length & 0x03)
    return bytes([first, (length - first) >> 2])


class VideoPacketBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame goes to the decoder as soon as its last
    packet (the RTP marker bit) is in, not when the next frame begins.

    A missing packet that NACK did not bring back within ``GAP_PATIENCE`` is given up:
    the frames after it go on to the decoder (from the first that cannot have begun in
    the gap) and the sender is asked for a key frame (PLI). aiortc's buffer would wait
    until its capacity filled up behind the gap: at a few packets a frame, half a minute
    of frozen picture (a burst lost to a busy CPU's full socket buffer, seen on Janus)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity=512, is_video=True)
        self._clock = clock
        self._gap_since: float | None = None  # when a packet behind the gap first came
        self.gaps_given_up = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        origin = self._origin
        if frame is not None or origin is None or self._packets[origin % self.capacity] is not None:
            self._gap_since = None  # no gap (a frame went out, or one is coming in)
            return pli, frame
        if self._packets[packet.sequence_number % self.capacity] is not packet:
            return pli, frame  # not kept (too old, or a duplicate): no news of the gap
        now = self._clock()
        if self._gap_since is None:
            self._gap_since = now
        if now - self._gap_since < GAP_PATIENCE:
            return pli, frame
        self._skip_gap()
        return True, self._remove_frame(packet.sequence_number)

    def _skip_gap(self) -> None:
        """Drops the gap and the packets after it that share a timestamp with the first
        of them: that frame may have begun in the gap."""
        self._gap_since = None
        self.gaps_given_up += 1
        origin = self._origin
        assert origin is not None
        first: RtpPacket | None = None
        for _ in range(self.capacity):
            packet = self._packets[origin % self.capacity]
            if first is not None and (packet is None or packet.timestamp != first.timestamp):
                break  # the next frame, or a packet not in yet
            if first is None:
                first = packet
            self._packets[origin % self.capacity] = None
            origin = uint16_add(origin, 1)
        self._origin = origin

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        packets: list[RtpPacket] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:  # the next frame began: this one is whole
                return self._complete(packets, timestamp, count)
            packets.append(packet)
            if packet.marker:
                return self._complete(packets, timestamp, count + 1)
        return None

    def _complete(self, packets: list[RtpPacket], timestamp: int, count: int) -> JitterFrame:
        data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
        self.remove(count)
        return JitterFrame(data=data, timestamp=timestamp)


def tune_receivers(pc: RTCPeerConnection) -> None:
    """Give every receiver of ``pc`` the buffer for its kind, once (before media flows)."""
    for transceiver in pc.getTransceivers():
        tune_receiver(transceiver.receiver, transceiver.kind)


def tune_receiver(receiver: Any, kind: str) -> None:
    current = getattr(receiver, _BUFFER, None)
    if current is None:
        log.warning("aiortc's receiver has no jitter buffer where expected: left as it is")
        return
    if isinstance(current, (AudioPacketBuffer, VideoPacketBuffer)):
        return
    if kind == "audio":
        setattr(receiver, _BUFFER, AudioPacketBuffer(getattr(receiver, _CODECS, None)))
    elif kind == "video":
        setattr(receiver, _BUFFER, VideoPacketBuffer())
