"""Real cameras: CSI camera modules through picamera2 (libcamera), USB webcams through V4L2.

On a Pi 4 a CSI camera feeds the hardware H.264 encoder, whose output goes into the call as
it is (``info.output == "h264"``: baseline profile, SPS/PPS on every key frame, a key frame
every ``camera.keyframe_interval`` frames or on request), with a small YUV420 "lores" stream
beside it for the self view and for peers that cannot take H.264. On a Pi 5 (no hardware
encoder) and for USB webcams the camera gives YUV420 frames that aiortc encodes, at a size
the Pi can encode in software (``frames.software_format``).

picamera2 is imported here only, when ``create`` runs; on Raspberry Pi OS it comes from the
``python3-picamera2`` package through a venv with system site packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from hal.camera.base import Camera, CameraError, CameraInfo, VideoFormat
from hal.camera.frames import software_format, yuv420_frame
from hal.camera.h264 import ParameterSets, preview_size
from hal.camera.v4l2 import SYSFS, PyAvCamera, check_format, find_uvc_cameras, has_hardware_h264
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.handoff import Handoff
from hal.kit import KitIdentity

log = logging.getLogger(__name__)

PACKET_BUFFER = 30  # encoded frames waiting for the reader (1 s at 30 fps)
FRAME_BUFFER = 2
STALL_SECONDS = 3.0
BUFFER_COUNT = 6  # libcamera buffers: enough for the encoder to hold some while capturing

# V4L2: force the encoder's next frame to be a key frame (linux/v4l2-controls.h, videodev2.h).
V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME = 0x009909E5  # V4L2_CID_CODEC_BASE + 229
VIDIOC_S_CTRL = 0xC008561C  # _IOWR('V', 28, struct v4l2_control)

SENSOR_NAMES = {
    "ov5647": "Camera Module 1",
    "imx219": "Camera Module 2",
    "imx708": "Camera Module 3",
    "imx477": "HQ Camera",
    "imx296": "Global Shutter Camera",
    "imx500": "AI Camera",
}


@dataclass(frozen=True)
class Picamera2Library:
    """The parts of picamera2 the driver uses, imported once by ``create``."""

    picamera2: Any  # the Picamera2 class
    h264_encoder: Any  # picamera2.encoders.H264Encoder
    output: Any  # picamera2.outputs.Output, the base of encoder outputs


def import_picamera2() -> Picamera2Library:
    """picamera2, or one error naming the camera and why. Importing it runs apt's C
    extensions (libcamera's bindings, simplejpeg): besides a missing package, a numpy
    they were not built against fails here with ValueError, AttributeError or others."""
    try:
        from picamera2 import Picamera2
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import Output
    except ImportError as exc:
        raise HardwareError(
            "camera",
            f"picamera2 cannot be imported ({type(exc).__name__}: {exc}): install "
            "python3-picamera2 and make the venv with --system-site-packages",
        ) from exc
    except Exception as exc:
        raise HardwareError(
            "camera",
            f"picamera2 cannot be imported ({type(exc).__name__}: {exc}); if it names numpy, "
            "the venv has a numpy other than Raspberry Pi OS's python3-numpy: rebuild it "
            "with images/install.sh",
        ) from exc
    return Picamera2Library(Picamera2, H264Encoder, Output)


def v4l2_force_keyframe(encoder: Any) -> None:
    """Ask picamera2's V4L2 H.264 encoder (its device file is ``encoder.vd``) for a key
    frame next. A plain control write: quick, and safe beside the encoder's own thread."""
    device = getattr(encoder, "vd", None)
    if device is None or device.closed:
        return
    control = struct.pack("Ii", V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)
    fcntl.ioctl(device.fileno(), VIDIOC_S_CTRL, control)


class PicameraCamera:
    """A CSI camera module. With ``hardware_h264``, ``read()`` gives the encoder's packets
    and ``read_preview()`` the lores frames; otherwise ``read()`` gives frames."""

    def __init__(
        self,
        library: Picamera2Library,
        number: int,
        info: CameraInfo,
        *,
        keyframe_interval: int,
        force_keyframe: Callable[[Any], None] = v4l2_force_keyframe,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._library = library
        self._number = number
        self._info = info
        self._keyframe_interval = keyframe_interval
        self._force_keyframe = force_keyframe
        self._stall_seconds = stall_seconds
        self._camera: Any = None
        self._encoder: Any = None
        self._main: Handoff[Any] | None = None  # packets (bytes, keyframe) or frames
        self._preview: Handoff[av.VideoFrame] | None = None
        self._seen_drops = 0
        self._awaiting_keyframe = False
        self._format: VideoFormat | None = None
        self.preview_format: VideoFormat | None = None
        self.keyframe_requests = 0
        self.opens: list[VideoFormat] = []

    @property
    def info(self) -> CameraInfo:
        return self._info

    @property
    def encodes(self) -> bool:
        return self._info.output == "h264"

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    @property
    def format(self) -> VideoFormat | None:
        return self._format

    def _error(self, message: str) -> CameraError:
        return CameraError("camera", f"{self._info.id}: {message}")

    async def open(self, fmt: VideoFormat) -> None:
        if self.is_open:
            raise self._error("already open")
        check_format(fmt, self._error)
        wanted = fmt if self.encodes else software_format(fmt)
        main: Handoff[Any] = Handoff(PACKET_BUFFER if self.encodes else FRAME_BUFFER)
        preview: Handoff[av.VideoFrame] | None = Handoff(FRAME_BUFFER) if self.encodes else None
        self._main, self._preview = main, preview
        self._seen_drops, self._awaiting_keyframe = 0, False
        try:
            camera, encoder, streaming = await asyncio.to_thread(self._start, wanted, main, preview)
        except Exception as exc:
            self._main = self._preview = None
            raise self._error(f"cannot start: {exc}") from exc
        if self._main is not main:  # closed while starting
            await asyncio.to_thread(_stop, camera, encoder)
            raise self._error("closed while opening")
        self._camera, self._encoder = camera, encoder
        self._format = streaming
        self.opens.append(streaming)

    def _start(
        self, fmt: VideoFormat, main: Handoff[Any], preview: Handoff[av.VideoFrame] | None
    ) -> tuple[Any, Any, VideoFormat]:
        """On a worker thread: claim the sensor, configure and start it."""
        camera = self._library.picamera2(self._number)
        encoder = None
        try:
            controls = {"FrameRate": fmt.fps}
            size = (fmt.width, fmt.height)
            if preview is not None:
                config = camera.create_video_configuration(
                    main={"size": size, "format": "YUV420"},
                    lores={"size": preview_size(*size), "format": "YUV420"},
                    controls=controls,
                    encode="main",
                    buffer_count=BUFFER_COUNT,
                )
            else:
                config = camera.create_video_configuration(
                    main={"size": size, "format": "YUV420"},
                    controls=controls,
                    buffer_count=BUFFER_COUNT,
                )
            camera.align_configuration(config)
            camera.configure(config)
            frames_stream = "lores" if preview is not None else "main"
            frames_config = camera.camera_config[frames_stream]
            width, height = frames_config["size"]
            stride = frames_config["stride"]
            frames_out = preview if preview is not None else main
            camera.post_callback = self._frames_callback(
                frames_stream, width, height, stride, frames_out
            )
            main_width, main_height = camera.camera_config["main"]["size"]
            if preview is not None:
                self.preview_format = VideoFormat(width, height, fmt.fps)
                encoder = self._make_encoder(fmt.fps)
                parameter_sets = ParameterSets()
                _keep_dropped_headers(encoder, parameter_sets)
                camera.start_recording(encoder, self._packet_output(main, parameter_sets))
            else:
                camera.start()
        except BaseException:
            _stop(camera, encoder, started=False)
            raise
        return camera, encoder, VideoFormat(main_width, main_height, fmt.fps)

    def _make_encoder(self, fps: int) -> Any:
        try:
            return self._library.h264_encoder(
                repeat=True,  # SPS/PPS before every key frame: a peer can start at any of them
                iperiod=self._keyframe_interval,
                framerate=fps,
                profile="baseline",
            )
        except TypeError as exc:
            raise self._error(
                f"this picamera2 cannot set the H.264 profile ({exc}); update python3-picamera2"
            ) from exc

    def _frames_callback(
        self, stream: str, width: int, height: int, stride: int, out: Handoff[av.VideoFrame]
    ) -> Callable[[Any], None]:
        def on_request(request: Any) -> None:  # picamera2's camera thread, once per frame
            try:
                frame = yuv420_frame(request.make_array(stream), width, height, stride)
            except Exception as exc:
                out.fail_threadsafe(self._error(f"bad {stream} buffer: {exc}"))
                return
            out.put_threadsafe(frame)

        return on_request

    def _packet_output(self, packets: Handoff[Any], parameter_sets: ParameterSets) -> Any:
        base: Any = self._library.output

        class PacketOutput(base):  # type: ignore[misc]
            """Hands each encoded frame to the loop, every IDR with its SPS and PPS; runs on
            the encoder's thread."""

            def outputframe(
                self,
                frame: Any,
                keyframe: bool = True,
                timestamp: int | None = None,
                packet: Any = None,
                audio: bool = False,
            ) -> None:
                if audio or frame is None:
                    return
                packets.put_threadsafe((parameter_sets.complete(bytes(frame)), bool(keyframe)))

        return PacketOutput()

    async def read(self) -> av.VideoFrame | av.Packet[Any]:
        main = self._main
        if main is None:
            raise self._error("not open")
        while True:
            item = await self._get(main)
            if not self.encodes:
                frame: av.VideoFrame = item
                return frame
            data, keyframe = item
            if main.dropped != self._seen_drops:
                # Packets were lost while the reader was behind: the picture is broken
                # for everyone until the next key frame.
                self._seen_drops = main.dropped
                self._awaiting_keyframe = True
                self.request_keyframe()
            if self._awaiting_keyframe and not keyframe:
                continue
            self._awaiting_keyframe = False
            packet = av.Packet(data)
            packet.is_keyframe = keyframe
            return packet

    async def read_preview(self) -> av.VideoFrame:
        preview = self._preview
        if preview is None:
            raise self._error("not open" if self.encodes else "no preview stream")
        frame: av.VideoFrame = await self._get(preview)
        return frame

    async def _get(self, handoff: Handoff[Any]) -> Any:
        try:
            async with asyncio.timeout(self._stall_seconds):
                return await handoff.get()
        except TimeoutError:
            raise self._error(f"no picture for {self._stall_seconds:g} s") from None

    def request_keyframe(self) -> None:
        encoder = self._encoder
        if encoder is None:
            return
        self.keyframe_requests += 1
        try:
            self._force_keyframe(encoder)
        except OSError as exc:
            log.warning("%s: cannot force a key frame: %s", self._info.id, exc)

    async def close(self) -> None:
        camera, encoder = self._camera, self._encoder
        for handoff in (self._main, self._preview):
            if handoff is not None:
                handoff.fail(self._error("closed"))
        self._camera = self._encoder = self._main = self._preview = None
        self._format = self.preview_format = None
        if camera is not None:
            await asyncio.to_thread(_stop, camera, encoder)


def _keep_dropped_headers(encoder: Any, parameter_sets: ParameterSets) -> None:
    """picamera2's V4L2 encoder drops a buffer that holds no picture (``_check_for_picture``):
    at low bitrates the Pi's encoder puts the SPS and PPS in one of their own, so the IDR
    after it comes without them. Whatever it drops, ``parameter_sets`` keeps."""
    check = getattr(encoder, "_check_for_picture", None)
    if not callable(check):
        return

    def check_for_picture(buffer: Any) -> bool:
        has_picture = bool(check(buffer))
        if not has_picture:
            parameter_sets.remember(bytes(buffer))
        return has_picture

    encoder._check_for_picture = check_for_picture


def _stop(camera: Any, encoder: Any, *, started: bool = True) -> None:
    """Stop streaming and release the sensor, whatever state it is in."""
    try:
        if started:
            if encoder is not None:
                camera.stop_recording()
            else:
                camera.stop()
    except Exception:
        log.exception("camera: failed to stop cleanly")
    finally:
        with contextlib.suppress(Exception):
            camera.close()


def is_usb_camera(info: dict[str, Any]) -> bool:
    """libcamera also lists UVC webcams; those are read through V4L2 instead."""
    return "usb" in str(info.get("Id", "")).lower()


def camera_name(model: str) -> str:
    return SENSOR_NAMES.get(model.lower(), model)


def v4l2_by_path(wanted: list[str], sysfs: Path = SYSFS) -> list[Camera]:
    """Cameras the config names by V4L2 device path (``/dev/video0``), whatever their driver:
    a capture device that is neither a CSI module nor a UVC webcam. The id is the path."""
    cameras: list[Camera] = []
    for path in wanted:
        if not path.startswith("/dev/video"):
            continue
        node = sysfs / "class" / "video4linux" / Path(path).name
        try:
            name = (node / "name").read_text().strip() or path
        except OSError:
            name = path  # no sysfs entry: opening it names the fault
        cameras.append(PyAvCamera(CameraInfo(id=path, name=name), path))
    return cameras


def find_cameras(
    library: Picamera2Library | None,
    config: HalConfig,
    *,
    sysfs: Path = SYSFS,
    force_keyframe: Callable[[Any], None] = v4l2_force_keyframe,
) -> list[Camera]:
    """Every camera: CSI modules in libcamera's order (``csi0``, ``csi1``), then UVC
    webcams, then V4L2 devices the config names by path. Without picamera2 (``library``
    None, off Raspberry Pi OS) there are no CSI cameras."""
    hardware_h264 = has_hardware_h264(sysfs)
    cameras: list[Camera] = []
    # Picamera2(n) takes a position in global_camera_info() (which sorts the cameras), not
    # libcamera's camera number ("Num").
    listed = library.picamera2.global_camera_info() if library is not None else []
    csi = [(position, info) for position, info in enumerate(listed) if not is_usb_camera(info)]
    for index, (number, details) in enumerate(csi):
        assert library is not None  # CSI cameras are listed by picamera2
        cameras.append(
            PicameraCamera(
                library,
                number,
                CameraInfo(
                    id=f"csi{index}",
                    name=camera_name(str(details.get("Model", "camera"))),
                    output="h264" if hardware_h264 else "frames",
                ),
                keyframe_interval=config.camera.keyframe_interval,
                force_keyframe=force_keyframe,
            )
        )
    for device in find_uvc_cameras(sysfs):
        cameras.append(PyAvCamera(CameraInfo(id=device.id, name=device.name), device.path))
    cameras.extend(v4l2_by_path(config.camera.devices, sysfs))
    return cameras


def select(cameras: list[Camera], wanted: list[str]) -> list[Camera]:
    found = ", ".join(camera.info.id for camera in cameras) or "none"
    if not cameras:
        raise HardwareError("camera", "no camera found (no CSI camera module, no USB webcam)")
    if not wanted:
        return cameras
    by_id = {camera.info.id: camera for camera in cameras}
    missing = [device for device in wanted if device not in by_id]
    if missing:
        raise HardwareError("camera", f"no camera {', '.join(missing)} (found: {found})")
    return [by_id[device] for device in wanted]


def create(config: HalConfig, kit: KitIdentity) -> list[Camera]:
    library: Picamera2Library | None
    try:
        library = import_picamera2()
    except HardwareError:
        # Off Raspberry Pi OS: V4L2 cameras still work (USB webcams, devices named by path).
        if not find_uvc_cameras() and not v4l2_by_path(config.camera.devices):
            raise
        log.warning("camera: picamera2 is missing; V4L2 cameras only")
        library = None
    try:
        cameras = find_cameras(library, config)
    except HardwareError:
        raise
    except Exception as exc:  # libcamera could not enumerate
        raise HardwareError("camera", f"cannot list cameras: {exc}") from exc
    chosen = select(cameras, config.camera.devices)
    log.info(
        "cameras: %s",
        ", ".join(f"{c.info.id} ({c.info.name}, {c.info.output})" for c in chosen),
    )
    return chosen
