"""H.264 as the Raspberry Pi's hardware encoder streams it, and helpers to inspect it.

The Pi 4's encoder (bcm2835-codec, driven by picamera2's ``H264Encoder``) emits one Annex B
access unit per frame: baseline profile, one slice, no B-frames, and with ``repeat=True`` the
SPS and PPS in front of every IDR frame, level 4.0 in the SPS whatever the mode (picamera2
asks for 4.2 only above 1080p30). ``PiStyleH264Encoder`` makes the same kind of stream
with libx264, so the fake camera and off-device tests send what a Pi sends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8


def nal_types(data: bytes) -> list[int]:
    """The NAL unit types in an Annex B byte stream, in order."""
    return [unit[0] & 0x1F for unit in nal_units(data) if unit]


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes."""
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        if end == -1:
            yield data[begin:]
            return
        # A four-byte start code leaves its leading zero at the end of this unit.
        yield data[begin : end - 1 if data[end - 1] == 0 else end]
        start = end


def is_keyframe(data: bytes) -> bool:
    """Whether the access unit holds an IDR picture with its SPS and PPS: a decoder can start
    from it."""
    types = set(nal_types(data))
    return {NAL_IDR, NAL_SPS, NAL_PPS} <= types


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes  # one Annex B access unit
    keyframe: bool


class PiStyleH264Encoder:
    """libx264 set up like the Pi's encoder: baseline, one slice per frame, SPS/PPS before
    every IDR, an IDR every ``keyframe_interval`` frames and whenever one is requested.
    ``request_keyframe`` may be called from any thread; ``encode`` from one thread at a time."""

    def __init__(
        self, width: int, height: int, fps: int, *, keyframe_interval: int, bitrate: int = 0
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs even sizes, not {width}x{height}")
        self.width = width
        self.height = height
        self.keyframe_interval = keyframe_interval
        self._keyframe_wanted = threading.Event()
        self._codec = av.CodecContext.create("libx264", "w")
        self._codec.width = width
        self._codec.height = height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = Fraction(1, fps)
        self._codec.framerate = Fraction(fps, 1)
        self._codec.profile = "Baseline"
        self._codec.bit_rate = bitrate or _default_bitrate(width, height, fps)
        self._codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "threads": "1",  # one slice per frame, as the Pi's encoder makes
            "x264-params": (
                f"keyint={keyframe_interval}:min-keyint={keyframe_interval}:scenecut=0"
                ":repeat-headers=1:aud=0:level=4.0"  # the Pi's encoder says 4.0 up to 1080p30
            ),
        }
        self._frames = 0
        self.keyframes = 0  # produced, periodic and requested

    def request_keyframe(self) -> None:
        self._keyframe_wanted.set()

    def encode(self, frame: av.VideoFrame) -> list[EncodedFrame]:
        if (frame.width, frame.height) != (self.width, self.height):
            frame = frame.reformat(self.width, self.height, format="yuv420p")
        elif frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        forced = self._keyframe_wanted.is_set()
        self._keyframe_wanted.clear()
        picture = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        picture.pts = self._frames
        picture.time_base = self._codec.time_base
        picture.pict_type = (
            av.video.frame.PictureType.I if forced else av.video.frame.PictureType.NONE
        )
        self._frames += 1
        out = []
        for packet in self._codec.encode(picture):
            data = bytes(packet)
            keyframe = is_keyframe(data)
            self.keyframes += keyframe
            out.append(EncodedFrame(_without_sei(data), keyframe))
        return out


class ParameterSets:
    """Keeps the last SPS and PPS the encoder gave and puts them in front of every IDR access
    unit that lacks them, so a decoder can start at any key frame (a browser that joins late).

    picamera2 drops encoder buffers that hold only an SPS and a PPS (no picture): what it
    drops is handed to ``remember``. One thread at a time (the encoder's)."""

    def __init__(self) -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self.inserted = 0  # key frames completed with remembered parameter sets
        self.incomplete = 0  # key frames left without, none having been seen yet

    @property
    def known(self) -> bool:
        return self._sps is not None and self._pps is not None

    def remember(self, data: bytes) -> None:
        for unit in nal_units(data):
            if unit and unit[0] & 0x1F == NAL_SPS:
                self._sps = unit
            elif unit and unit[0] & 0x1F == NAL_PPS:
                self._pps = unit

    def complete(self, data: bytes) -> bytes:
        """``data`` (one Annex B access unit), with the SPS and PPS before its IDR slice if it
        has one and they were missing."""
        units = [unit for unit in nal_units(data) if unit]
        types = [unit[0] & 0x1F for unit in units]
        self.remember(data)
        if NAL_IDR not in types or (NAL_SPS in types and NAL_PPS in types):
            return data
        if self._sps is None or self._pps is None:
            self.incomplete += 1
            return data
        first = next(i for i, kind in enumerate(types) if kind in (NAL_SLICE, NAL_IDR, NAL_SEI))
        missing = [
            u for u, kind in ((self._sps, NAL_SPS), (self._pps, NAL_PPS)) if kind not in types
        ]
        out = units[:first] + missing + units[first:]
        self.inserted += 1
        return b"".join(b"\x00\x00\x00\x01" + unit for unit in out)


def preview_size(width: int, height: int, limit: tuple[int, int] = (320, 240)) -> tuple[int, int]:
    """The size of the small frames an encoding camera streams beside its packets (self view,
    peers that cannot take H.264): the camera's aspect ratio within ``limit``, even sizes."""
    scale = min(1.0, limit[0] / width, limit[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _default_bitrate(width: int, height: int, fps: int) -> int:
    # picamera2's "medium" quality: 6 Mbit/s for 1080p30, scaled by pixel rate.
    return max(100_000, int(6_000_000 * width * height * fps / (1920 * 1080 * 30)))


def _without_sei(data: bytes) -> bytes:
    """x264 puts its version banner in an SEI unit; the Pi's encoder sends none."""
    if NAL_SEI not in nal_types(data):
        return data
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in nal_units(data) if unit[0] & 0x1F != 6)
