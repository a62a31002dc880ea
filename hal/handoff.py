"""Handing items from a driver's thread to the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """A bounded queue a driver thread puts into and the loop reads from. Live media is better
    dropped than late: when full, the oldest item goes and ``dropped`` counts it. A thread
    that hits a fatal error calls ``fail_threadsafe``; the reader then gets that error once
    the items before it are read. Create it on the loop that will read it."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0

    # --- any thread ---

    def put_threadsafe(self, item: T) -> None:
        self._call(self.put, item)

    def fail_threadsafe(self, error: BaseException) -> None:
        self._call(self.fail, error)

    def _call(self, function: object, argument: object) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed since the check
            self._loop.call_soon_threadsafe(function, argument)  # type: ignore[arg-type]

    # --- the loop ---

    def put(self, item: T) -> None:
        if self._error is not None:
            return
        self._items.append(item)
        while len(self._items) > self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self) -> T:
        while not self._items:
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
