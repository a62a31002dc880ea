"""Fake cameras: a numbered, kit-coloured test pattern, paced like a sensor."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import av

from hal.camera.base import CameraError, CameraInfo, VideoFormat
from hal.camera.h264 import PiStyleH264Encoder, preview_size
from hal.camera.pattern import MAX_SIZE, MIN_SIZE, Colour, TestPattern, kit_colour, parse_colour
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.handoff import Handoff
from hal.kit import KitIdentity
from hal.pacing import Pacer

FAKE_CAMERA_COUNT = 2
VIDEO_TIME_BASE = Fraction(1, 90_000)  # RTP's video clock, as aiortc uses


class FakeCamera:
    """One fake camera. ``read()`` returns yuv420p frames at the opened format's rate; a reader
    that falls a whole frame behind loses frames, as with a real sensor, which shows as a gap
    in the counter the pattern carries (``read_pattern``).

    With ``info.output == "h264"`` it behaves like a Pi 4 camera with its hardware encoder:
    ``read()`` returns H.264 ``av.Packet``s (``PiStyleH264Encoder``: baseline, SPS/PPS on
    every key frame, a key frame every ``keyframe_interval`` frames or when requested) and
    ``read_preview()`` the same pictures as small frames.

    Scripting: ``fail()`` makes the camera vanish (the next ``read()`` raises CameraError and
    ``open()`` does too) until ``restore()``; ``close_error`` set makes ``close()`` raise it
    (a driver that errors on release, as a pulled USB camera's can); ``covered = True`` gives
    black frames (a lens cap); ``stalled = True`` opens but delivers no frames (a sensor that
    hangs). Records: ``opens`` (formats), ``closes``, ``frames_produced``,
    ``dropped_frames``, ``keyframe_requests``."""

    def __init__(
        self,
        info: CameraInfo,
        *,
        index: int,
        colour: Colour,
        kit_name: str,
        keyframe_interval: int = 60,
    ) -> None:
        self._info = info
        self.keyframe_interval = keyframe_interval
        self.index = index
        self.colour = colour
        self.label = f"{kit_name} · {info.name}"
        self.opens: list[VideoFormat] = []
        self.closes = 0
        self.frames_produced = 0
        self.keyframe_requests = 0
        self._failed = False
        self.close_error: Exception | None = None
        self.covered = False
        self.stalled = False
        self._format: VideoFormat | None = None
        self._pattern: TestPattern | None = None
        self._pacer: Pacer | None = None
        self._encoder: PiStyleH264Encoder | None = None
        self._preview: Handoff[av.VideoFrame] | None = None

    @property
    def info(self) -> CameraInfo:
        return self._info

    @property
    def is_open(self) -> bool:
        return self._pattern is not None

    @property
    def format(self) -> VideoFormat | None:
        """The format actually streaming (sizes are rounded down to even), or None."""
        return self._format

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def dropped_frames(self) -> int:
        return self._pacer.skipped if self._pacer else 0

    def _error(self, message: str) -> CameraError:
        return CameraError("camera", f"{self._info.id}: {message}")

    async def open(self, fmt: VideoFormat) -> None:
        if self._failed:
            raise self._error("camera is gone")
        if self.is_open:
            raise self._error("already open")
        width, height = fmt.width // 2 * 2, fmt.height // 2 * 2  # yuv420p needs even sizes
        if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
            raise self._error(f"unsupported size {fmt.width}x{fmt.height}")
        if not 1 <= fmt.fps <= 60:
            raise self._error(f"unsupported frame rate {fmt.fps}")
        # Font rendering and encoder set-up take milliseconds: keep them off the loop.
        pattern = await asyncio.to_thread(
            TestPattern,
            width,
            height,
            colour=self.colour,
            label=self.label,
            camera_index=self.index,
        )
        if self._info.output == "h264":
            self._encoder = await asyncio.to_thread(
                PiStyleH264Encoder,
                width,
                height,
                fmt.fps,
                keyframe_interval=self.keyframe_interval,
            )
            self._preview = Handoff(2)
        if self._failed:
            self._release()
            raise self._error("camera is gone")
        self._format = VideoFormat(width, height, fmt.fps)
        self._pacer = Pacer(1 / fmt.fps)
        self._pacer.start()
        self._pattern = pattern
        self.opens.append(self._format)

    async def read(self) -> av.VideoFrame | av.Packet[Any]:
        while True:
            frame = await self._next_frame()
            encoder, preview = self._encoder, self._preview
            if encoder is None or preview is None:
                return frame
            small = frame.reformat(*preview_size(frame.width, frame.height), format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            preview.put(small)
            encoded = await asyncio.to_thread(encoder.encode, frame)
            if self._encoder is not encoder:
                raise self._error("closed while reading")
            if encoded:  # libx264 without look-ahead gives one access unit per frame
                packet = av.Packet(encoded[0].data)
                packet.is_keyframe = encoded[0].keyframe
                packet.pts, packet.time_base = frame.pts, VIDEO_TIME_BASE
                return packet

    async def read_preview(self) -> av.VideoFrame:
        preview = self._preview
        if self._failed:
            raise self._error("camera is gone")
        if preview is None:
            raise self._error("not open" if self._info.output == "h264" else "no preview stream")
        return await preview.get()

    async def _next_frame(self) -> av.VideoFrame:
        if self._failed:
            raise self._error("camera is gone")
        if self._pacer is None or self._format is None or not self.is_open:
            raise self._error("not open")
        pacer, fps = self._pacer, self._format.fps
        while self.stalled and pacer is self._pacer and not self._failed:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a hung sensor: polled, as the knob is a plain flag
        slot = await pacer.next_slot()
        pattern = self._pattern
        if self._failed:
            raise self._error("camera is gone")
        if pattern is None or pacer is not self._pacer:
            raise self._error("closed while reading")
        frame = pattern.frame(slot) if not self.covered else _black(pattern.width, pattern.height)
        frame.pts = round(slot * VIDEO_TIME_BASE.denominator / fps)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_produced += 1
        return frame

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        if self._encoder is not None:
            self._encoder.request_keyframe()

    @property
    def keyframes_sent(self) -> int:
        """Key frames the H.264 mode has produced since it opened (periodic and requested)."""
        return self._encoder.keyframes if self._encoder is not None else 0

    async def close(self) -> None:
        if self.is_open:
            self.closes += 1
        self._release()
        if self.close_error is not None:
            raise self.close_error

    def fail(self) -> None:
        """The camera vanishes (cable pulled, driver crash): it is released at once."""
        self._failed = True
        self._release()

    def restore(self) -> None:
        """The camera is back; it must be opened again."""
        self._failed = False

    def _release(self) -> None:
        self._pattern = None
        self._format = None
        self._encoder = None
        if self._preview is not None:
            self._preview.fail(self._error("closed"))
            self._preview = None


def _black(width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, (16, 128, 128), strict=True):  # video-range black
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def create(config: HalConfig, kit: KitIdentity) -> list[FakeCamera]:
    """Two fake cameras, ``fake0`` and ``fake1``, in the kit's colour (or the configured one),
    giving frames or H.264 packets (``camera.fake_output``), limited to ``camera.devices``
    when that names any."""
    settings = config.camera
    colour = parse_colour(settings.fake_colour) if settings.fake_colour else kit_colour(kit.uid)
    cameras = [
        FakeCamera(
            CameraInfo(
                id=f"fake{index}", name=f"Fake camera {index + 1}", output=settings.fake_output
            ),
            index=index,
            colour=colour,
            kit_name=kit.name,
            keyframe_interval=settings.keyframe_interval,
        )
        for index in range(FAKE_CAMERA_COUNT)
    ]
    if not settings.devices:
        return cameras
    by_id = {camera.info.id: camera for camera in cameras}
    missing = [device for device in settings.devices if device not in by_id]
    if missing:
        raise HardwareError("camera", f"no camera {', '.join(missing)} (found: {', '.join(by_id)})")
    return [by_id[device] for device in settings.devices]
