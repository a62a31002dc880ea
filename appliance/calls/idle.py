"""The idle timer: a call we are alone in ends after the settings' idle period, and the
delegate is warned shortly before."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from appliance.events import Event, SessionTimeoutWarning

IDLE_WARNING_LEAD = 60  # seconds before an idle timeout, as the seed's UI warns


class IdleTimer:
    def __init__(
        self,
        period: int,
        *,
        emit: Callable[[Event], object],
        expire: Callable[[], Awaitable[None]],
    ) -> None:
        self._period = period
        self._emit = emit
        self._expire = expire
        self._task: asyncio.Task[None] | None = None

    def update(self, *, alone: bool, active: bool) -> None:
        """Counts down while we are alone in an active call; anyone joining stops it."""
        if alone and self._task is None and active:
            self._task = asyncio.create_task(self._countdown(), name="idle timeout")
        elif not alone and self._task is not None:
            self._task.cancel()
            self._task = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _countdown(self) -> None:
        lead = min(IDLE_WARNING_LEAD, self._period)
        await asyncio.sleep(self._period - lead)
        self._emit(SessionTimeoutWarning(seconds_left=lead))
        await asyncio.sleep(lead)
        self._task = None  # ending the call must not cancel the task that is ending it
        await self._expire()
