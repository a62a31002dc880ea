"""A fake touch screen (or mouse) driven by tests."""

from __future__ import annotations

from collections.abc import Iterable

from hal.callbacks import CallbackList
from hal.config import HalConfig
from hal.input.base import PointerAction, PointerCallback, PointerEvent
from hal.kit import KitIdentity


class FakePointer:
    """Scripting: ``tap(x, y)``, ``drag([(x, y), ...])`` or single ``send(action, x, y)``
    calls, in screen fractions (0 to 1). ``mouse=True`` makes it a mouse, whose events ask
    for a cursor. Records every event sent in ``events``; callbacks run on the loop."""

    def __init__(self, *, mouse: bool = False, name: str = "fake touch screen") -> None:
        self.mouse = mouse
        self.name = name
        self.events: list[PointerEvent] = []
        self.closed = False
        self._callbacks: CallbackList[PointerEvent] = CallbackList()

    @property
    def devices(self) -> list[str]:
        return [] if self.closed else [self.name]

    def start(self, callback: PointerCallback) -> None:
        self._callbacks.add(callback)

    async def close(self) -> None:
        self.closed = True

    def send(self, action: PointerAction | str, x: float, y: float) -> PointerEvent:
        for label, value in (("x", x), ("y", y)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{label}: expected a screen fraction from 0 to 1, got {value!r}")
        event = PointerEvent(PointerAction(action), float(x), float(y), self.mouse, self.name)
        self.events.append(event)
        if not self.closed:
            self._callbacks.fire(event)
        return event

    def tap(self, x: float, y: float) -> None:
        self.send(PointerAction.DOWN, x, y)
        self.send(PointerAction.UP, x, y)

    def drag(self, points: Iterable[tuple[float, float]]) -> None:
        path = list(points)
        if len(path) < 2:
            raise ValueError("points: a drag needs at least a start and an end")
        self.send(PointerAction.DOWN, *path[0])
        for x, y in path[1:]:
            self.send(PointerAction.MOVE, x, y)
        self.send(PointerAction.UP, *path[-1])


def create(config: HalConfig, kit: KitIdentity) -> FakePointer:
    return FakePointer(mouse=config.input.fake_mouse)
