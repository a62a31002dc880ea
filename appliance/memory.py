"""Freed memory back to the system when the kit settles idle.

glibc keeps what Python and the codecs free in its heap for reuse, and after a few large
frames have come and gone it stops handing memory back on its own (its thresholds grow with
the largest block freed). An idle kit still held about 9 MiB of such free heap, of 138 MiB.
``malloc_trim(0)`` returns it; done only when the kit is idle (after the boot self-test,
and once a call has ended), it costs a call nothing."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Awaitable, Callable

from appliance.calls import Calls, SessionState
from appliance.events import SessionStateChanged

log = logging.getLogger(__name__)

SETTLE = 5.0  # seconds: the threads and buffers of what just closed are gone by then


def trim_heap() -> bool:
    """Hands the C heap's free pages back to the system. False where the C library has
    no ``malloc_trim`` (not glibc): nothing to do there. Blocks: run it in a thread."""
    try:
        # The process's own symbols: no ldconfig to run (find_library would), which a
        # sandboxed service may not be allowed to.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


class IdleTrim:
    """Trims the heap once the kit has stayed idle for ``settle`` seconds: after the boot
    self-test (``settled``) and after each call (``follow``)."""

    def __init__(
        self,
        calls: Calls,
        *,
        settle: float = SETTLE,
        trim: Callable[[], bool] = trim_heap,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._calls = calls
        self._settle = settle
        self._trim = trim
        self._sleep = sleep

    async def settled(self) -> None:
        """Trims, off the event loop, once ``settle`` seconds have passed, if the kit is
        idle then (what a call or the self-test closed is released in the background)."""
        await self._sleep(self._settle)
        if self._calls.state == SessionState.IDLE:
            await asyncio.to_thread(self._trim)

    async def follow(self) -> None:
        """Until cancelled: trims after each call."""
        with self._calls.events.subscribe() as events:
            while True:
                event = (await events.get()).event
                if isinstance(event, SessionStateChanged) and event.state == SessionState.IDLE:
                    await self.settled()
