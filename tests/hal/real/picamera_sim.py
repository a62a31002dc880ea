"""A stand-in for picamera2 that streams like a Pi: a numbered test pattern through the
camera's post_callback (YUV420 buffers with padded rows, as libcamera lays them out) and,
when recording, H.264 from ``PiStyleH264Encoder`` into the encoder's Output on the encoder's
own thread, as the Pi 4's V4L2 encoder does. Only the hardware is simulated: the driver's
threads, hand-offs, buffer conversion and packet path run for real.

The stand-in is built on the real picamera2 (``picamera2_real``): ``SimPicamera2`` is a
subclass of the real ``Picamera2`` whose every method first checks its arguments against
the real method's signature, whose camera list is the real ``global_camera_info`` over a
faked libcamera, and whose constructor takes a position in that list as the real one does
(not libcamera's ``Num``); the encoder's arguments are checked against the real
``H264Encoder`` and the driver's output subclasses the real ``Output``."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np

from hal.camera.h264 import NAL_PPS, NAL_SPS, PiStyleH264Encoder, nal_units
from hal.camera.pattern import TestPattern
from hal.camera.real import Picamera2Library
from tests.hal.real.picamera2_real import LibcameraManager, check_call, load_picamera2

REAL = load_picamera2()
F = TypeVar("F", bound=Callable[..., Any])


def checked(method: F) -> F:
    """Refuses a call the real Picamera2 method of the same name would refuse."""
    real = getattr(REAL.Picamera2, method.__name__)
    static = isinstance(inspect.getattr_static(REAL.Picamera2, method.__name__), staticmethod)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if static:
            check_call(real, *args, **kwargs)
        else:
            check_call(real, self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


STRIDE_ALIGN = 64  # libcamera pads rows; the driver must drop the padding


def aligned(value: int) -> int:
    return -(-value // STRIDE_ALIGN) * STRIDE_ALIGN


class SimEncoder(REAL.H264Encoder):  # type: ignore[misc]
    """picamera2's H264Encoder (its own constructor and buffer check; the V4L2 device is
    never opened); encodes with libx264 like the Pi."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kwargs = kwargs
        self.codec: PiStyleH264Encoder | None = None
        self.forced = 0

    def force_keyframe(self) -> None:
        self.forced += 1
        if self.codec is not None:
            self.codec.request_keyframe()


class SimRequest:
    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self._buffers = buffers

    def make_array(self, name: str) -> np.ndarray:
        return self._buffers[name].copy()


class SimPicamera2(REAL.Picamera2):  # type: ignore[misc]
    """Subclassed per test by ``sim_library``, so the class-level records are per test."""

    _cm: Any  # picamera2's CameraManager: here only its libcamera manager, faked
    instances: list[SimPicamera2]
    in_use: set[int]
    global_camera_info: Callable[[], list[dict[str, Any]]]

    @checked
    def __init__(self, camera_num: int = 0) -> None:
        # As the real constructor: a position in global_camera_info(), whose "Num" is
        # libcamera's camera number.
        self.is_open = False
        self._preview = None
        details = self.global_camera_info()[camera_num]
        number = details["Num"]
        if number in self.in_use:
            raise RuntimeError(f"camera {number} is in use")
        self.in_use.add(number)
        self.number = number
        self.model = details.get("Model")
        self.is_open = True
        self.camera_config: dict[str, Any] = {}
        self.post_callback: Any = None
        self.closed = False
        self.started = False
        self.frames = 0
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._encoder: SimEncoder | None = None
        self._output: Any = None
        self.instances.append(self)

    @checked
    def create_video_configuration(self, **config: Any) -> dict[str, Any]:
        return {"use_case": "video", **config}

    @checked
    def align_configuration(self, config: dict[str, Any]) -> None:
        pass

    @checked
    def configure(self, config: dict[str, Any]) -> None:
        fps = config["controls"]["FrameRate"]
        self.camera_config = {"controls": {"FrameRate": fps}}
        for stream in ("main", "lores"):
            if config.get(stream):
                width, height = config[stream]["size"]
                self.camera_config[stream] = {
                    "size": (width, height),
                    "stride": aligned(width),
                    "format": "YUV420",
                }

    @checked
    def start(self) -> None:
        self._begin()

    @checked
    def start_recording(self, encoder: SimEncoder, output: Any) -> None:
        assert isinstance(output, REAL.Output)
        width, height = self.camera_config["main"]["size"]
        encoder.codec = PiStyleH264Encoder(
            width,
            height,
            self.camera_config["controls"]["FrameRate"],
            keyframe_interval=encoder.kwargs["iperiod"],
        )
        self._encoder, self._output = encoder, output
        output.start()
        self._begin()

    def _begin(self) -> None:
        self.started = True
        self._running.set()
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()

    def _stream(self) -> None:
        fps = self.camera_config["controls"]["FrameRate"]
        patterns = {
            stream: TestPattern(
                *self.camera_config[stream]["size"],
                colour=(40, 120, 200),
                label="sim",
                camera_index=self.number,
            )
            for stream in ("main", "lores")
            if stream in self.camera_config
        }
        start = time.monotonic()
        while self._running.is_set():
            buffers = {
                stream: self._strided(stream, pattern) for stream, pattern in patterns.items()
            }
            if self.post_callback is not None:
                self.post_callback(SimRequest(buffers))
            if self._encoder is not None and self._encoder.codec is not None:
                frame = patterns["main"].frame(self.frames)
                for unit in self._encoder.codec.encode(frame):
                    for buffer in encoder_buffers(unit.data, self.frames):
                        # picamera2's encoder thread: a buffer without a picture is dropped
                        if self._encoder._check_for_picture(buffer):
                            self._output.outputframe(
                                buffer, unit.keyframe, self.frames * 1_000_000 // fps
                            )
            self.frames += 1
            time.sleep(max(0.0, start + self.frames / fps - time.monotonic()))

    def _strided(self, stream: str, pattern: TestPattern) -> np.ndarray:
        width, height = self.camera_config[stream]["size"]
        stride = aligned(width)
        buffer = np.full(stride * height * 3 // 2, 7, np.uint8)  # padding: junk
        luma = buffer[: stride * height].reshape(height, stride)[:, :width]
        chroma = stride // 2 * height // 2
        u = buffer[stride * height : stride * height + chroma].reshape(height // 2, stride // 2)
        v = buffer[stride * height + chroma :].reshape(height // 2, stride // 2)
        pattern.draw(self.frames, luma, u[:, : width // 2], v[:, : width // 2])
        return buffer.reshape(height * 3 // 2, stride)

    def _halt(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        self.started = False

    @checked
    def stop(self) -> None:
        self._halt()

    @checked
    def stop_recording(self) -> None:
        self._halt()
        if self._output is not None:
            self._output.stop()
        self._encoder = None

    @checked
    def close(self) -> None:
        if not self.is_open:
            return
        self._halt()
        self.is_open = False
        self.closed = True
        self.in_use.discard(self.number)


# In libcamera's order (its Num): global_camera_info sorts them by Id, descending, so the
# Camera Module 3 comes first there and second here.
def encoder_buffers(access_unit: bytes, frame: int) -> list[bytes]:
    """How the Pi's encoder hands out a key frame: at low bitrates, the SPS and PPS in a
    buffer of their own before the IDR's (here every key frame but the first)."""
    units = list(nal_units(access_unit))
    headers = [u for u in units if u[0] & 0x1F in (NAL_SPS, NAL_PPS)]
    if not headers or frame == 0:
        return [access_unit]
    rest = [u for u in units if u[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
    return [b"".join(b"\x00\x00\x00\x01" + u for u in part) for part in (headers, rest)]


CSI_CAMERAS = [
    {"Model": "imx219", "Location": 2, "Rotation": 0, "Id": "/base/soc/i2c0mux/i2c@0/imx219@10"},
    {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"},
]


def sim_library(cameras: list[dict[str, Any]] | None = None) -> Picamera2Library:
    """``cameras`` as libcamera lists them (each a dict of Model, Location, Rotation, Id)."""

    class Sim(SimPicamera2):
        pass

    Sim._cm = SimpleNamespace(cms=LibcameraManager(CSI_CAMERAS if cameras is None else cameras))
    Sim.global_camera_info = staticmethod(REAL.global_camera_info_over(Sim))
    Sim.instances = []
    Sim.in_use = set()
    return Picamera2Library(Sim, SimEncoder, REAL.Output)


def force_sim_keyframe(encoder: Any) -> None:
    encoder.force_keyframe()
