"""Real-time pacing for fake sources, on the event loop's clock."""

from __future__ import annotations

import asyncio


class Pacer:
    """Slot ``n`` is due at ``start + n * period``. Deadlines come from the start time, never
    from the previous wake-up, so lateness does not accumulate. A reader that falls more than
    ``max_lag`` slots behind skips to the current slot, as a sensor drops frames or a capture
    buffer overruns; ``skipped`` counts the slots lost that way."""

    def __init__(self, period: float, *, max_lag: int = 0) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.max_lag = max_lag
        self.skipped = 0
        self._start: float | None = None
        self._next_slot = 0

    def start(self) -> None:
        self._start = asyncio.get_running_loop().time()
        self._next_slot = 0
        self.skipped = 0

    async def next_slot(self) -> int:
        """Wait until the next slot is due (not past it) and return its number."""
        if self._start is None:
            self.start()
        assert self._start is not None
        loop = asyncio.get_running_loop()
        deadline = self._start + self._next_slot * self.period
        now = loop.time()
        if now < deadline:
            await sleep_until(deadline)
        else:
            current = int((now - self._start) / self.period)
            if current - self._next_slot > self.max_lag:
                self.skipped += current - self._next_slot
                self._next_slot = current
        slot = self._next_slot
        self._next_slot += 1
        return slot


async def sleep_until(deadline: float) -> None:
    """Sleep until the loop's clock reaches ``deadline``: scheduled at the deadline itself,
    not at "now + delay", so the time spent getting here is not added on top."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(deadline, _wake, woken)
    try:
        await woken
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
