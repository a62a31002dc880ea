"""What a camera is to the rest of callbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import av

from hal.errors import HardwareError


class CameraError(HardwareError):
    pass


@dataclass(frozen=True)
class VideoFormat:
    width: int = 640
    height: int = 480
    fps: int = 30


@dataclass(frozen=True)
class CameraInfo:
    id: str  # stable: "csi0", "usb-046d:0825", "fake0"
    name: str  # for people: "Camera Module 3", "Fake camera 1"
    # "frames": read() gives av.VideoFrame (yuv420p). "h264": read() gives av.Packet from a
    # hardware encoder (baseline profile, SPS/PPS before every key frame).
    output: Literal["frames", "h264"] = "frames"


@runtime_checkable
class Camera(Protocol):
    @property
    def info(self) -> CameraInfo: ...

    @property
    def is_open(self) -> bool: ...

    async def open(self, fmt: VideoFormat) -> None:
        """Acquire the sensor and start streaming. Raises CameraError."""

    async def read(self) -> av.VideoFrame | av.Packet[Any]:
        """The next frame, paced by the sensor. Raises CameraError if the camera fails."""

    def request_keyframe(self) -> None:
        """Ask an encoding camera for a key frame soon (after a PLI/FIR). No-op for frames."""

    async def close(self) -> None:
        """Release the sensor. Safe to call twice."""


@runtime_checkable
class EncodingCamera(Camera, Protocol):
    """A camera whose ``read()`` gives H.264 packets (``info.output == "h264"``). Beside the
    encoder it streams small frames (the Pi's "lores" stream) for the self view and for peers
    that cannot take H.264; ``read_preview`` returns them while the camera is open."""

    async def read_preview(self) -> av.VideoFrame:
        """The next small yuv420p frame. Raises CameraError if the camera fails or closes."""
