"""The RTP receive buffers, driven with scripted packet sequences: audio goes out in order
at once, a gap waits as long as the reordering measured needs and its waiting packets go out
as one decodable Opus packet; video goes out when its marker packet is in."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from appliance.media.receive import (
    GAP_PATIENCE,
    MAX_PATIENCE,
    AudioPacketBuffer,
    VideoPacketBuffer,
    combine_opus,
    opus_frame_ms,
)
from hal.audio.pcm import tone
from tests.clock import ManualClock

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def audio_packet(seq: int, data: bytes | None = None) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq % 0x10000, timestamp=seq * 960)
    packet._data = data if data is not None else bytes([252, seq % 256])  # type: ignore[attr-defined]
    return packet


def feed(buffer: AudioPacketBuffer, seqs: list[int]) -> list[JitterFrame | None]:
    return [buffer.add(audio_packet(seq))[1] for seq in seqs]


def test_packets_in_order_go_out_at_once() -> None:
    buffer = AudioPacketBuffer()
    out = feed(buffer, list(range(65530, 65546)))  # across the sequence number wrap
    assert all(frame is not None for frame in out)
    assert [frame.timestamp for frame in out if frame] == [s * 960 for s in range(65530, 65546)]


def test_a_lost_packet_holds_nothing_back_without_reordering() -> None:
    buffer = AudioPacketBuffer()
    out = feed(buffer, [0, 1, 3, 4, 5])  # 2 never comes
    assert [f.timestamp if f else None for f in out] == [0, 960, 3 * 960, 4 * 960, 5 * 960]
    assert buffer.given_up == 1


def test_reordering_seen_makes_a_gap_wait_for_the_late_packet() -> None:
    buffer = AudioPacketBuffer()
    feed(buffer, [0, 1, 3, 2])  # 2 came one behind: given up, then late
    assert buffer.late == 1
    assert buffer.patience == 2
    out = feed(buffer, [4, 6, 5, 7])  # now 5 is waited for, and 5 and 6 go out together
    assert out[1] is None
    frame = out[2]
    assert frame is not None and frame.timestamp == 5 * 960
    assert buffer.repacked == 1
    assert buffer.late == 1


def test_patience_is_bounded_and_forgets_old_reordering() -> None:
    buffer = AudioPacketBuffer()
    feed(buffer, [0, *range(2, 12), 1])  # 1 came ten behind
    assert buffer.patience == MAX_PATIENCE
    feed(buffer, list(range(12, 12 + 600)))
    assert buffer.patience == 1


def test_a_sender_that_starts_over_is_followed() -> None:
    buffer = AudioPacketBuffer()
    feed(buffer, [100, 101])
    out = feed(buffer, [30_000, 30_001])
    assert all(frame is not None for frame in out)


def test_waiting_opus_packets_go_out_as_one_that_decodes_to_all_of_them() -> None:
    encoder = get_encoder(OPUS)
    packets = []
    for i, pcm in enumerate(tone(700.0, level_dbfs=-10, frames=3)):
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        packets += payloads
    assert len(packets) == 3 and all(p[0] & 0x03 == 0 for p in packets)
    combined = combine_opus(packets)
    assert combined is not None
    decoded = get_decoder(OPUS).decode(JitterFrame(data=combined, timestamp=0))
    samples = sum(f.samples for f in decoded)
    assert samples == 3 * 960
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in decoded])
    assert np.abs(pcm.astype(np.int32)).max() > 3000  # the tone, not silence


def test_opus_packets_that_cannot_be_joined_are_refused() -> None:
    assert combine_opus([bytes([252, 1]), bytes([253, 1, 2, 3])]) is None  # code 1
    assert combine_opus([bytes([252, 1]), bytes([244, 1])]) is None  # another config
    assert combine_opus([bytes([252, 1])] * 7) is None  # 140 ms
    long = combine_opus([bytes([252]) + bytes(300), bytes([252, 9])])
    # 300 = 4 * 12 + 252 (RFC 6716 3.2.1)
    assert long is not None and long[:4] == bytes([255, 0x82, 252, 12])
    assert opus_frame_ms(252) == 20.0 and opus_frame_ms(0) == 10.0


def test_g711_packets_are_joined_sample_after_sample() -> None:
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    buffer = AudioPacketBuffer({111: pcmu})
    feed(buffer, [0, 2, 1])  # learn: one behind
    out = [buffer.add(audio_packet(s, bytes([s]) * 4))[1] for s in (3, 5, 4)]
    frame = out[2]
    assert frame is not None and frame.data == bytes([4]) * 4 + bytes([5]) * 4


def video_packet(seq: int, timestamp: int, marker: bool) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=marker)
    packet._data = bytes([seq])  # type: ignore[attr-defined]
    return packet


def test_a_video_frame_goes_out_when_its_last_packet_is_in() -> None:
    buffer = VideoPacketBuffer()
    assert buffer.add(video_packet(0, 3000, False))[1] is None
    assert buffer.add(video_packet(2, 3000, True))[1] is None  # 1 is missing
    frame = buffer.add(video_packet(1, 3000, False))[1]
    assert frame is not None and frame.data == bytes([0, 1, 2]) and frame.timestamp == 3000
    frame = buffer.add(video_packet(3, 6000, True))[1]  # a one-packet frame: at once
    assert frame is not None and frame.timestamp == 6000


def test_without_markers_a_video_frame_goes_out_when_the_next_begins() -> None:
    buffer = VideoPacketBuffer()
    assert buffer.add(video_packet(0, 3000, False))[1] is None
    assert buffer.add(video_packet(1, 3000, False))[1] is None
    frame = buffer.add(video_packet(2, 6000, False))[1]
    assert frame is not None and frame.data == bytes([0, 1])


def test_a_video_packet_that_never_comes_is_given_up_and_a_key_frame_asked_for() -> None:
    clock = ManualClock()
    buffer = VideoPacketBuffer(clock=clock)
    assert buffer.add(video_packet(0, 3000, True))[1] is not None
    # 1 and 2 (the first packets of the frame at 6000) are lost; NACK brings nothing back.
    assert buffer.add(video_packet(3, 6000, True)) == (False, None)
    clock.now = GAP_PATIENCE / 2
    assert buffer.add(video_packet(4, 9000, False)) == (False, None)  # still waiting
    clock.now = GAP_PATIENCE + 0.01
    pli, frame = buffer.add(video_packet(5, 9000, True))
    # The frame whose start was lost is dropped, the next goes on, and a PLI is due.
    assert pli is True and buffer.gaps_given_up == 1
    assert frame is not None and frame.timestamp == 9000 and frame.data == bytes([4, 5])
    # From then on, frames flow as before.
    frame = buffer.add(video_packet(6, 12000, True))[1]
    assert frame is not None and frame.timestamp == 12000


def test_a_video_packet_that_comes_late_but_in_time_is_waited_for() -> None:
    clock = ManualClock()
    buffer = VideoPacketBuffer(clock=clock)
    assert buffer.add(video_packet(0, 3000, True))[1] is not None
    assert buffer.add(video_packet(2, 6000, True)) == (False, None)
    clock.now = GAP_PATIENCE - 0.01
    pli, frame = buffer.add(video_packet(1, 6000, False))  # NACK's retransmission
    assert pli is False and frame is not None and frame.data == bytes([1, 2])
    assert buffer.gaps_given_up == 0
    # A later gap is timed from when it appeared, not from the first one.
    assert buffer.add(video_packet(4, 9000, True)) == (False, None)
    clock.now += GAP_PATIENCE / 2
    assert buffer.add(video_packet(5, 12000, True)) == (False, None)
