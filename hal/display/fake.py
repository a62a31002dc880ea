"""A fake HDMI screen that keeps what it was last shown."""

from __future__ import annotations

import numpy as np

from hal.config import HalConfig
from hal.display.base import DisplayError, Rgb
from hal.errors import DeviceGone
from hal.kit import KitIdentity


class FakeDisplay:
    """Keeps a copy of the last frame (``last_frame``) and counts ``frames_shown``.
    Scripting: ``unplug()`` / ``replug()`` the cable; ``show()`` while unplugged raises
    DeviceGone. Records ``opens`` and ``closes``."""

    def __init__(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._connected = True
        self._open = False
        self.last_frame: Rgb | None = None
        self.frames_shown = 0
        self.opens = 0
        self.closes = 0

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        if not self._connected:
            raise DeviceGone("display", "no screen connected")
        if not self._open:
            self._open = True
            self.opens += 1

    async def show(self, frame: Rgb) -> None:
        width, height = self._size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {width}x{height} RGB uint8 frame, got {frame.dtype} {frame.shape}"
            )
        if not self._connected:
            raise DeviceGone("display", "no screen connected")
        if not self._open:
            raise DisplayError("display", "not open")
        # A copy: the compositor may paint its next frame into the same buffer.
        self.last_frame = frame.copy()
        self.frames_shown += 1

    async def close(self) -> None:
        if self._open:
            self.closes += 1
        self._open = False

    def unplug(self) -> None:
        self._connected = False

    def replug(self) -> None:
        self._connected = True


def create(config: HalConfig, kit: KitIdentity) -> FakeDisplay:
    return FakeDisplay(config.display.width, config.display.height)
