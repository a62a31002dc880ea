"""Stage probes for the latency benchmarks (bench only, never the product).

A probe is hooked onto one instance of an aiortc or callbox object from outside and notes
the loop time at which a marked block (audio) or a frame (video) passes that point of the
pipeline: a kit's microphone, its outgoing track, its DTLS transport (RTP as it leaves),
the far side's RTP receiver (as it arrives), that receiver's jitter buffer (as it is let
out to the decoder), the decoded PCM or frame, the speaker or screen.

Audio markers are silence and then a loud burst: in PCM the burst's first sample above
-30 dBFS after silence; in Opus the first big packet after silent ones (digital silence
encodes to 3 bytes, the burst to hundreds), so a marker is recognised at every point
without decoding anything.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hal.audio.base import SAMPLE_RATE, Pcm
from tests.kits import KitFactory, running_server

Round = TypeVar("Round")

ONSET = int(32768 * 10 ** (-30 / 20))  # -30 dBFS
SILENT = int(32768 * 10 ** (-50 / 20))  # below -50 dBFS counts as silence
QUIET_BLOCKS = 4  # blocks of silence before a marker counts
SMALL_PAYLOAD = 20  # bytes: Opus digital silence is 3
BIG_PAYLOAD = 100  # bytes: the burst at -10 dBFS is 300 and more


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class PcmOnsets:
    """Finds marker onsets in a stream of PCM blocks: ``feed`` returns the onset's sample
    index in the block, or None."""

    _quiet: int = 0

    def feed(self, pcm: Pcm) -> int | None:
        magnitude = np.abs(pcm.astype(np.int32))
        loud = np.flatnonzero(magnitude > ONSET)
        found = int(loud[0]) if self._quiet >= QUIET_BLOCKS and len(loud) else None
        quiet = int(magnitude.max(initial=0)) < SILENT
        self._quiet = self._quiet + 1 if quiet else 0
        return found


@dataclass
class PacketOnsets:
    """Finds markers in a stream of Opus payload sizes."""

    _quiet: int = 0

    def feed(self, size: int) -> bool:
        found = size >= BIG_PAYLOAD and self._quiet >= QUIET_BLOCKS
        self._quiet = self._quiet + 1 if size <= SMALL_PAYLOAD else 0
        return found


@dataclass
class Timeline:
    """Loop times at which markers passed each named point, in order of arrival."""

    points: dict[str, list[float]] = field(default_factory=dict)

    def note(self, point: str, at: float) -> None:
        self.points.setdefault(point, []).append(at)

    def between(self, start: str, end: str, window: float) -> list[float]:
        """Seconds from each ``start`` to the first ``end`` after it within ``window``."""
        ends = self.points.get(end, [])
        out = []
        for at in self.points.get(start, []):
            later = [e for e in ends if at <= e < at + window]
            if later:
                out.append(later[0] - at)
        return out

    def chains(self, names: list[str], window: float) -> list[list[float]]:
        """For each marker at the first point, its time at every point (the first time at
        or after the previous point's), if it passed them all within ``window``."""
        out = []
        for start in self.points.get(names[0], []):
            times = [start]
            for name in names[1:]:
                later = [t for t in self.points.get(name, []) if times[-1] <= t < start + window]
                if not later:
                    break
                times.append(later[0])
            if len(times) == len(names):
                out.append(times)
        return out


# --- RTP --------------------------------------------------------------------------------


def is_rtp(data: bytes) -> bool:
    """RTP, not RTCP (RFC 5761: RTCP packet types 192-223 sit where RTP's marker and
    payload type are)."""
    return len(data) >= 12 and not 192 <= data[1] <= 223


def rtp_ssrc(data: bytes) -> int:
    return int.from_bytes(data[8:12], "big")


def rtp_timestamp(data: bytes) -> int:
    return int.from_bytes(data[4:8], "big")


def rtp_marker(data: bytes) -> bool:
    return bool(data[1] & 0x80)


def rtp_payload_size(data: bytes) -> int:
    header = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= header + 4:  # header extension
        header += 4 + 4 * int.from_bytes(data[header + 2 : header + 4], "big")
    return len(data) - header


def on_rtp_sent(transport: Any, ssrc: int, seen: Callable[[bytes, float], None]) -> None:
    """``seen(packet, at)`` for each RTP packet of ``ssrc`` as ``transport`` (an
    RTCDtlsTransport) is handed it to protect and send."""
    send = transport._send_rtp

    async def sending(data: bytes) -> None:
        if is_rtp(data) and rtp_ssrc(data) == ssrc:
            seen(data, now())
        await send(data)

    transport._send_rtp = sending


def on_rtp_received(receiver: Any, seen: Callable[[Any, float], None]) -> None:
    """``seen(packet, at)`` for each RtpPacket that reaches ``receiver`` (RTCRtpReceiver)."""
    handle = receiver._handle_rtp_packet

    async def handling(packet: Any, arrival_time_ms: int) -> None:
        seen(packet, now())
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handling


def jitter_buffer(receiver: Any) -> Any:
    return receiver._RTCRtpReceiver__jitter_buffer


def on_frame_released(receiver: Any, seen: Callable[[Any, float], None]) -> None:
    """``seen(encoded_frame, at)`` when ``receiver``'s jitter buffer lets an encoded frame
    out to the decoder."""
    buffer = jitter_buffer(receiver)
    add = buffer.add

    def adding(packet: Any) -> Any:
        pli, frame = add(packet)
        if frame is not None:
            seen(frame, now())
        return pli, frame

    buffer.add = adding


def audio_sender(pc: Any) -> Any:
    return next(s for s in pc.getSenders() if s.track is not None and s.track.kind == "audio")


def video_sender(pc: Any) -> Any:
    return next(s for s in pc.getSenders() if s.track is not None and s.track.kind == "video")


def receiver_of(pc: Any, kind: str) -> Any:
    return next(t.receiver for t in pc.getTransceivers() if t.kind == kind)


def probe_audio_link(sender_pc: Any, receiver_pc: Any, timeline: Timeline) -> None:
    """Notes ``sent`` (the marker's RTP packet leaves), ``arrived`` (reaches the far
    receiver) and ``released`` (leaves its jitter buffer for the decoder)."""
    sender = audio_sender(sender_pc)
    receiver = receiver_of(receiver_pc, "audio")
    sent, arrived, released = PacketOnsets(), PacketOnsets(), PacketOnsets()

    def on_sent(data: bytes, at: float) -> None:
        if sent.feed(rtp_payload_size(data)):
            timeline.note("sent", at)

    def on_arrived(packet: Any, at: float) -> None:
        if arrived.feed(len(packet.payload)):
            timeline.note("arrived", at)

    def on_released(frame: Any, at: float) -> None:
        if released.feed(len(frame.data)):
            timeline.note("released", at)

    on_rtp_sent(sender.transport, sender._ssrc, on_sent)
    on_rtp_received(receiver, on_arrived)
    on_frame_released(receiver, on_released)


@dataclass
class FrameTimes:
    """Per video frame (by its RTP timestamp): when its last packet was sent, when its
    first and last packets arrived, and when the jitter buffer released it."""

    sent: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, float] = field(default_factory=dict)
    released: dict[int, float] = field(default_factory=dict)
    mapper: Any = None  # the receiver's TimestampMapper: decoded pts = RTP timestamp - origin

    def raw_timestamp(self, pts: int) -> int | None:
        origin = getattr(self.mapper, "_origin", None)
        if origin is None:
            return None
        return int(pts + origin) % (1 << 32)


def probe_video_link(sender_pc: Any, receiver_pc: Any, times: FrameTimes) -> None:
    sender = video_sender(sender_pc)
    receiver = receiver_of(receiver_pc, "video")

    def on_sent(data: bytes, at: float) -> None:
        times.sent[rtp_timestamp(data)] = at  # the last packet's time wins

    def on_arrived(packet: Any, at: float) -> None:
        times.arrived[packet.timestamp] = at

    def on_released(frame: Any, at: float) -> None:
        times.released[frame.timestamp] = at

    times.mapper = receiver._RTCRtpReceiver__timestamp_mapper

    on_rtp_sent(sender.transport, sender._ssrc, on_sent)
    on_rtp_received(receiver, on_arrived)
    on_frame_released(receiver, on_released)


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def onset_time(at: float, index: int) -> float:
    return at + index / SAMPLE_RATE


async def side_by_side(
    rounds: int,
    seconds: float,
    bare_round: Callable[[float], Awaitable[Round]],
    callbox_round: Callable[[KitFactory, int, float], Awaitable[Round]],
) -> tuple[list[Round], list[Round]]:
    """(callbox's rounds, bare aiortc's), taken in turn in one run, so both see the same
    machine (these machines are noisy)."""
    ours: list[Round] = []
    bare: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                for n in range(rounds):
                    bare.append(await bare_round(seconds))
                    ours.append(await callbox_round(kits, n, seconds))
            finally:
                await kits.close()
    return ours, bare
