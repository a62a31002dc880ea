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
import os
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


def resident_mib() -> float | None:
    """This process's resident memory in MiB; None without Linux's /proc."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measured(trim: Callable[[], bool]) -> tuple[bool, float | None, float | None]:
    """``trim()``'s result with the resident memory before and after it. Blocks."""
    before = resident_mib()
    trimmed = trim()
    return trimmed, before, resident_mib()


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
        if self._calls.state != SessionState.IDLE:
            return
        trimmed, before, after = await asyncio.to_thread(measured, self._trim)
        if not trimmed:
            log.debug("idle: the C heap had nothing to give back")
        elif before is None or after is None:
            log.info("idle: heap trimmed")
        else:
            # In the journal: the trim ran under the service's sandbox, and what it gave back.
            log.info("idle: heap trimmed, resident memory %.0f -> %.0f MiB", before, after)

    async def follow(self) -> None:
        """Until cancelled: trims after each call."""
        with self._calls.events.subscribe() as events:
            while True:
                event = (await events.get()).event
                if isinstance(event, SessionStateChanged) and event.state == SessionState.IDLE:
                    await self.settled()
