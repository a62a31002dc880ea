"""Our audio as each peer's sender takes it: Opus packets encoded once for every peer, or
frames for a peer on another codec (G.711), which aiortc encodes itself.

aiortc encodes a frame in its thread pool, one trip there and back per 20 ms frame and per
peer: a busy loop (the emulator's, a loaded Pi's) makes those trips slowly, and a sender
that gets a frame per trip falls behind the microphone and drops most of it. A packet is
only packed into RTP, at once. So the kit encodes its microphone once, a batch of blocks per
trip, and every Opus peer sends the same packets.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from appliance.media.tracks import PushTrack
from hal.audio.base import SAMPLE_RATE

OPUS = "audio/opus"
OPUS_BITRATE = 64_000  # mono voice; aiortc's own encoder spends 96 kbps on stereo
TIME_BASE = Fraction(1, SAMPLE_RATE)


class OutgoingAudio(PushTrack):
    """One peer's audio: Opus packets once its sender started on Opus, frames before and
    otherwise (``follow_audio_sender`` tells it the codec)."""

    def __init__(self, queue_size: int) -> None:
        super().__init__("audio", queue_size)
        self.codec: str | None = None

    @property
    def takes_packets(self) -> bool:
        return self.codec == OPUS


def follow_audio_sender(sender: Any, track: OutgoingAudio) -> None:
    """Tell ``track`` the codec ``sender`` (an aiortc RTCRtpSender) starts with: the first
    of the negotiated codecs, which aiortc's sender uses."""
    start = sender.send

    async def send(parameters: Any) -> None:
        if parameters.codecs:
            track.codec = parameters.codecs[0].mimeType.lower()
        await start(parameters)

    sender.send = send


class OpusEncoder:
    """Mono 48 kHz frames of 20 ms in, Opus packets out with their timestamps (the frames'
    sample clock). Used from one thread at a time."""

    def __init__(self) -> None:
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.bit_rate = OPUS_BITRATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec

    def encode(self, frames: list[av.AudioFrame]) -> list[av.Packet[Any]]:
        packets: list[av.Packet[Any]] = []
        for frame in frames:
            for packet in self._codec.encode(frame):
                packet.time_base = TIME_BASE
                packets.append(packet)
        return packets
