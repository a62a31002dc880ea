"""The HDMI screen."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from hal.errors import HardwareError

Rgb = npt.NDArray[np.uint8]  # (height, width, 3)


class DisplayError(HardwareError):
    pass


@runtime_checkable
class Display(Protocol):
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""

    @property
    def connected(self) -> bool: ...

    async def open(self) -> None: ...

    async def show(self, frame: Rgb) -> None:
        """Put a full-screen RGB frame of ``size`` on the screen."""

    async def close(self) -> None: ...
