"""Pointing devices: a touch screen or a USB mouse, for picking and dragging tiles and
pressing the on-screen buttons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hal.errors import HardwareError


class InputError(HardwareError):
    pass


class PointerAction(StrEnum):
    DOWN = "down"  # a finger touches, or the main mouse button goes down
    MOVE = "move"
    UP = "up"


@dataclass(frozen=True)
class PointerEvent:
    action: PointerAction
    x: float  # 0 (left edge) to 1 (right edge) of the screen
    y: float  # 0 (top) to 1 (bottom)
    cursor: bool = False  # a mouse: the screen should show where it points
    device: str = ""  # which device it came from, for logs


PointerCallback = Callable[[PointerEvent], None]


@runtime_checkable
class Pointer(Protocol):
    def start(self, callback: PointerCallback) -> None:
        """Begin reading; ``callback`` runs on the event loop for every event."""

    @property
    def devices(self) -> list[str]:
        """The pointing devices in use now (they come and go: USB)."""

    async def close(self) -> None: ...
