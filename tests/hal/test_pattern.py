"""The test pattern survives real codecs and scaling, and is cheap to draw."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from hal.camera import pattern
from hal.camera.pattern import (
    COUNTER_MODULO,
    KIT_PALETTE,
    PatternInfo,
    TestPattern,
    colour_distance,
    dominant_colour,
    kit_colour,
    read_pattern,
)

ENCODERS = {
    "vp8": ("libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8"}),
    "h264": ("libx264", "h264", {"preset": "ultrafast", "tune": "zerolatency"}),
}


def round_trip(frames: list[av.VideoFrame], codec: str, bitrate: int) -> list[av.VideoFrame]:
    """Encode at a modest bitrate and decode again, as a WebRTC peer would."""
    encoder_name, decoder_name, options = ENCODERS[codec]
    encoder = av.CodecContext.create(encoder_name, "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = frames[0].width, frames[0].height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.framerate = Fraction(30)
    encoder.bit_rate = bitrate
    encoder.options = options
    decoder = av.CodecContext.create(decoder_name, "r")
    decoded: list[av.VideoFrame] = []
    packets = []
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index, encoder.time_base
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    for packet in packets:
        decoded += decoder.decode(packet)  # type: ignore[arg-type]
    return decoded


def make_frames(width: int, height: int, first: int, count: int, uid: str = "room-a"):
    source = TestPattern(
        width, height, colour=kit_colour(uid), label="Room A · Fake camera 2", camera_index=1
    )
    return [source.frame(first + i) for i in range(count)]


@pytest.mark.parametrize("codec", ["vp8", "h264"])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480)])
def test_code_survives_lossy_round_trip(codec: str, width: int, height: int) -> None:
    first = 123_456
    decoded = round_trip(make_frames(width, height, first, 30), codec, bitrate=150_000)
    assert len(decoded) == 30
    infos = [read_pattern(frame) for frame in decoded]
    assert infos == [PatternInfo(counter=first + i, camera_index=1) for i in range(30)]
    assert colour_distance(dominant_colour(decoded[-1]), kit_colour("room-a")) < 12


@pytest.mark.parametrize(
    ("codec", "source", "scaled"),
    [
        ("vp8", (640, 480), (320, 240)),
        ("h264", (320, 240), (640, 480)),
        ("h264", (640, 480), (400, 300)),
        ("vp8", (320, 240), (176, 144)),
    ],
)
def test_code_survives_codec_and_scaling(
    codec: str, source: tuple[int, int], scaled: tuple[int, int]
) -> None:
    decoded = round_trip(make_frames(*source, first=7, count=10), codec, bitrate=200_000)
    for index, frame in enumerate(decoded):
        resized = frame.reformat(width=scaled[0], height=scaled[1])
        assert read_pattern(resized) == PatternInfo(counter=7 + index, camera_index=1)
    rgb = decoded[-1].reformat(width=scaled[0], height=scaled[1], format="rgb24")
    assert read_pattern(rgb) == PatternInfo(counter=7 + len(decoded) - 1, camera_index=1)


@pytest.mark.parametrize(
    ("width", "height"), [(160, 120), (176, 144), (320, 240), (1280, 720), (1920, 1080)]
)
def test_every_size_draws_and_reads_back(width: int, height: int) -> None:
    source = TestPattern(width, height, colour=(200, 40, 40), label="Kit · Cam", camera_index=3)
    frame = source.frame(COUNTER_MODULO + 42)  # the counter wraps, as documented
    assert (frame.width, frame.height, frame.format.name) == (width, height, "yuv420p")
    assert read_pattern(frame) == PatternInfo(counter=42, camera_index=3)
    assert colour_distance(dominant_colour(frame), (200, 40, 40)) < 6


def test_frames_that_carry_no_code_read_as_none() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        assert read_pattern(av.VideoFrame.from_ndarray(noise, format="rgb24")) is None
    grey = np.full((240, 320, 3), 128, np.uint8)
    assert read_pattern(av.VideoFrame.from_ndarray(grey, format="rgb24")) is None


def test_a_damaged_code_is_rejected_not_misread() -> None:
    frame = make_frames(320, 240, first=1000, count=1)[0]
    luma = frame.to_ndarray()[:240]
    bottom = pattern.band_height(240)
    luma[:bottom, 64:80] = 255 - luma[:bottom, 64:80]  # flip one column of cells
    damaged = np.concatenate([luma, frame.to_ndarray()[240:]])
    assert read_pattern(av.VideoFrame.from_ndarray(damaged, format="yuv420p")) is None


def test_the_bar_moves_and_the_counter_text_changes() -> None:
    source = TestPattern(320, 240, colour=(30, 30, 200), label="x", camera_index=0)
    first, later = source.frame(0).to_ndarray(), source.frame(15).to_ndarray()
    bar_rows = slice(140, 240)  # below the text
    assert not np.array_equal(first[bar_rows], later[bar_rows])
    assert source.bar_left(0) != source.bar_left(15)
    text_rows = slice(pattern.band_height(240), 100)  # below the barcode band
    assert not np.array_equal(first[text_rows], later[text_rows])


def test_kit_colours_are_stable_saturated_and_distinct() -> None:
    assert kit_colour("room-a") == kit_colour("room-a")
    colours = {kit_colour(uid) for uid in ("room-a", "room-b", "room-c")}
    assert len(colours) == 3
    for red, green, blue in KIT_PALETTE:
        assert max(red, green, blue) - min(red, green, blue) > 100
    for index, colour in enumerate(KIT_PALETTE):
        for other in KIT_PALETTE[index + 1 :]:
            assert colour_distance(colour, other) > 50


def test_text_is_rendered_once_not_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    source = TestPattern(
        640, 480, colour=(10, 120, 200), label="Room A · Fake camera 1", camera_index=0
    )

    def no_drawing(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow used while drawing a frame")

    monkeypatch.setattr(pattern.ImageDraw, "Draw", no_drawing)
    monkeypatch.setattr(pattern.ImageFont, "load_default", no_drawing)
    for counter in range(5):
        assert read_pattern(source.frame(counter)) == PatternInfo(counter, 0)
