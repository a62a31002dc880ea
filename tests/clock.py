"""Time for tests: a sleep that records the delays asked of it and returns at once, so a
backoff's schedule is checked without waiting for it; a clock the test moves by hand."""

from __future__ import annotations

import asyncio


class RecordingSleep:
    """``gated``: each sleep, once recorded, waits until the test sets ``gate``."""

    def __init__(self, *, gated: bool = False) -> None:
        self.delays: list[float] = []
        self._changed = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self._changed.set()
        await self.gate.wait()
        await asyncio.sleep(0)  # let the code under test and the test take turns

    async def until(self, count: int, timeout: float = 10.0) -> list[float]:
        """Waits until ``count`` sleeps were asked for, and returns the first ``count``."""
        async with asyncio.timeout(timeout):
            while len(self.delays) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.delays[:count]


class ManualClock:
    """A monotonic clock that reads ``now``, which the test sets."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
