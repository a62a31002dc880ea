"""Every key frame that leaves a kit carries its SPS and PPS, on real H.264 from libx264."""

from __future__ import annotations

import av
import pytest

from hal.camera.h264 import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    ParameterSets,
    PiStyleH264Encoder,
    nal_types,
    nal_units,
)
from hal.camera.pattern import TestPattern

KEYFRAME_INTERVAL = 10


def encoded(frames: int) -> list[bytes]:
    encoder = PiStyleH264Encoder(320, 240, 30, keyframe_interval=KEYFRAME_INTERVAL)
    pattern = TestPattern(320, 240, colour=(40, 120, 200), label="sps", camera_index=0)
    out = []
    for number in range(frames):
        out += [unit.data for unit in encoder.encode(pattern.frame(number))]
    return out


def strip_parameter_sets(data: bytes) -> tuple[bytes, bytes]:
    """(the access unit without its SPS and PPS, a buffer of just them)."""
    units = list(nal_units(data))
    headers = [u for u in units if u[0] & 0x1F in (NAL_SPS, NAL_PPS)]
    rest = [u for u in units if u[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
    join = lambda part: b"".join(b"\x00\x00\x00\x01" + u for u in part)  # noqa: E731
    return join(rest), join(headers)


def decodes_from(stream: list[bytes]) -> int:
    """Frames a decoder that starts at ``stream[0]`` (a late joiner) gets out of it."""
    codec = av.CodecContext.create("h264", "r")
    got = 0
    for data in stream:
        got += len(codec.decode(av.Packet(data)))
    got += len(codec.decode(None))
    return got


@pytest.mark.parametrize("headers_seen", ["in-the-first-key-frame", "dropped-buffer-only"])
def test_key_frames_stripped_of_sps_and_pps_get_them_back(headers_seen: str) -> None:
    stream = encoded(3 * KEYFRAME_INTERVAL)
    keyframes = [i for i, data in enumerate(stream) if NAL_IDR in nal_types(data)]
    assert keyframes == [0, KEYFRAME_INTERVAL, 2 * KEYFRAME_INTERVAL]
    sets = ParameterSets()
    out = []
    for index, data in enumerate(stream):
        if index in keyframes and (index > 0 or headers_seen == "dropped-buffer-only"):
            # What picamera2 gives: the picture; the SPS/PPS buffer it dropped.
            data, headers = strip_parameter_sets(data)
            assert set(nal_types(data)) == {NAL_IDR}
            sets.remember(headers)
        out.append(sets.complete(data))
    for index in keyframes:
        types = nal_types(out[index])
        assert types.index(NAL_SPS) < types.index(NAL_IDR)
        assert types.index(NAL_PPS) < types.index(NAL_IDR)
    assert out[1:KEYFRAME_INTERVAL] == stream[1:KEYFRAME_INTERVAL]  # others untouched
    # A decoder joining at any key frame decodes every frame from there on.
    for index in keyframes:
        assert decodes_from(out[index:]) == len(stream) - index
    assert sets.incomplete == 0


def test_a_key_frame_before_any_parameter_set_is_counted_not_invented() -> None:
    stream = encoded(2)
    picture, _ = strip_parameter_sets(stream[0])
    sets = ParameterSets()
    assert sets.complete(picture) == picture
    assert sets.incomplete == 1 and not sets.known
    with pytest.raises(av.error.InvalidDataError):  # what a browser gets: nothing
        decodes_from([picture])
