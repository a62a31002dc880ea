"""USB (UVC) webcams through V4L2, read with PyAV, and what sysfs says about video devices.

``PyAvCamera`` reads any input PyAV can open (a V4L2 device in the appliance, a lavfi source
in tests) on its own thread, decodes it and hands yuv420p frames to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from hal.camera.base import CameraError, CameraInfo, VideoFormat
from hal.camera.frames import software_format
from hal.handoff import Handoff

log = logging.getLogger(__name__)

SYSFS = Path("/sys")
FRAME_BUFFER = 2  # frames waiting for the reader; older ones are dropped, as a sensor does
STALL_SECONDS = 3.0  # no frame for this long: the camera is gone
JOIN_SECONDS = 2.0  # a V4L2 read returns within a frame period; a hung one is left behind
MIN_SIZE = (64, 48)
MAX_SIZE = (1920, 1080)
# The Pi 4's hardware video encoder (picamera2's H264Encoder drives it); the Pi 5 has none.
PI_H264_ENCODER = "bcm2835-codec-encode"


@dataclass(frozen=True)
class UvcDevice:
    path: str  # "/dev/video0"
    id: str  # "usb-046d:0825"
    name: str  # what the camera calls itself


def find_uvc_cameras(sysfs: Path = SYSFS) -> list[UvcDevice]:
    """UVC webcams: video nodes bound to ``uvcvideo`` that capture pictures (index 0; the
    other node of each camera carries metadata), in device order. Two cameras of one model
    get ids ``usb-VID:PID`` and ``usb-VID:PID-2``."""
    found: list[UvcDevice] = []
    seen: dict[str, int] = {}
    nodes = sorted((sysfs / "class" / "video4linux").glob("video*"), key=_node_number)
    for node in nodes:
        driver = node / "device" / "driver"
        if not driver.exists() or driver.resolve().name != "uvcvideo":
            continue
        if _read(node / "index", "0") != "0":
            continue
        usb = (node / "device").resolve().parent  # the interface's parent is the USB device
        vendor, product = _read(usb / "idVendor", "0000"), _read(usb / "idProduct", "0000")
        base = f"usb-{vendor}:{product}"
        seen[base] = count = seen.get(base, 0) + 1
        device_id = base if count == 1 else f"{base}-{count}"
        found.append(UvcDevice(f"/dev/{node.name}", device_id, _read(node / "name", base)))
    return found


def has_hardware_h264(sysfs: Path = SYSFS) -> bool:
    """Whether the Pi's hardware H.264 encoder is there (a Pi 4, not a Pi 5)."""
    return any(
        _read(node / "name", "") == PI_H264_ENCODER
        for node in (sysfs / "class" / "video4linux").glob("video*")
    )


def _node_number(node: Path) -> int:
    digits = node.name.removeprefix("video")
    return int(digits) if digits.isdigit() else 1 << 30


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def v4l2_options(fmt: VideoFormat) -> list[dict[str, str]]:
    """What to ask a UVC camera for, best first: MJPEG (which every UVC camera offers at
    its larger sizes), then whatever raw format it gives."""
    size = {"video_size": f"{fmt.width}x{fmt.height}", "framerate": str(fmt.fps)}
    return [{**size, "input_format": "mjpeg"}, size]


class PyAvCamera:
    """A camera read through PyAV: frames at (at most) the software encoding budget, scaled
    to the opened size. A reader thread decodes; the device is released on ``close``."""

    def __init__(
        self,
        info: CameraInfo,
        url: str,
        *,
        input_format: str = "video4linux2",
        options: Callable[[VideoFormat], list[dict[str, str]]] = v4l2_options,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._info = info
        self._url = url
        self._input_format = input_format
        self._options = options
        self._stall_seconds = stall_seconds
        self._frames: Handoff[av.VideoFrame] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._format: VideoFormat | None = None
        self.opens: list[VideoFormat] = []

    @property
    def info(self) -> CameraInfo:
        return self._info

    @property
    def is_open(self) -> bool:
        return self._frames is not None

    @property
    def format(self) -> VideoFormat | None:
        return self._format

    def _error(self, message: str) -> CameraError:
        return CameraError("camera", f"{self._info.id}: {message}")

    async def open(self, fmt: VideoFormat) -> None:
        if self.is_open:
            raise self._error("already open")
        check_format(fmt, self._error)
        wanted = software_format(fmt)
        container = await asyncio.to_thread(self._open_container, wanted)
        frames: Handoff[av.VideoFrame] = Handoff(FRAME_BUFFER)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run,
            args=(container, wanted, frames, stop),
            name=f"camera {self._info.id}",
            daemon=True,
        )
        self._frames, self._stop, self._thread, self._format = frames, stop, thread, wanted
        thread.start()
        self.opens.append(wanted)

    def _open_container(self, fmt: VideoFormat) -> Any:
        errors = []
        for options in self._options(fmt):
            try:
                container = av.open(self._url, format=self._input_format, options=options)
            except (av.FFmpegError, OSError) as exc:
                errors.append(str(exc))
                continue
            if not container.streams.video:
                container.close()
                raise self._error("has no video stream")
            return container
        raise self._error(f"cannot open {self._url}: {'; '.join(errors)}")

    def _run(
        self, container: Any, fmt: VideoFormat, frames: Handoff[av.VideoFrame], stop: Any
    ) -> None:
        stream = container.streams.video[0]
        packets = container.demux(stream)
        try:
            for packet in packets:
                for frame in packet.decode():
                    if stop.is_set():
                        return
                    frames.put_threadsafe(owned_frame(frame, fmt))
                if stop.is_set():
                    return
            frames.fail_threadsafe(self._error("the camera stopped sending"))
        except (av.FFmpegError, OSError, ValueError) as exc:
            if not stop.is_set():
                frames.fail_threadsafe(self._error(f"camera failed: {exc}"))
        finally:
            # FFmpeg's V4L2 input lends its packets (and so the frames decoded from them)
            # the driver's mmap buffers, and gives each back to the device when it is freed:
            # one freed after the device closed writes into freed memory (a segfault, later,
            # in whichever thread frees it). So every one goes before the device closes.
            packet = frame = None  # dropped here, not when the function returns
            with contextlib.suppress(Exception):
                packets.close()
            with contextlib.suppress(Exception):
                container.close()

    async def read(self) -> av.VideoFrame:
        frames = self._frames
        if frames is None:
            raise self._error("not open")
        try:
            async with asyncio.timeout(self._stall_seconds):
                return await frames.get()
        except TimeoutError:
            raise self._error(f"no picture for {self._stall_seconds:g} s") from None

    def request_keyframe(self) -> None:
        """Frames are encoded by aiortc, which answers key frame requests itself."""

    async def close(self) -> None:
        frames, thread = self._frames, self._thread
        self._frames = self._thread = self._format = None
        if frames is None or thread is None:
            return
        self._stop.set()
        frames.fail(self._error("closed"))
        await asyncio.to_thread(thread.join, JOIN_SECONDS)
        if thread.is_alive():
            log.warning("%s: the reader did not stop; leaving it behind", self._info.id)


def owned_frame(frame: av.VideoFrame, fmt: VideoFormat) -> av.VideoFrame:
    """``frame`` at ``fmt``'s size as yuv420p, in memory of its own. PyAV hands back the
    frame itself when it is already so, and a V4L2 frame may live in a driver buffer that
    must go back to the device before it closes: such a one is copied."""
    out = frame.reformat(fmt.width, fmt.height, format="yuv420p")
    if out is frame:
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
    return out


def check_format(fmt: VideoFormat, error: Callable[[str], CameraError]) -> None:
    if not (MIN_SIZE[0] <= fmt.width <= MAX_SIZE[0] and MIN_SIZE[1] <= fmt.height <= MAX_SIZE[1]):
        raise error(f"unsupported size {fmt.width}x{fmt.height}")
    if fmt.width % 2 or fmt.height % 2:
        raise error(f"sizes must be even, not {fmt.width}x{fmt.height}")
    if not 1 <= fmt.fps <= 60:
        raise error(f"unsupported frame rate {fmt.fps}")
