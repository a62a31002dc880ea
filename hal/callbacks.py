"""Subscriber lists whose callbacks always run on the event loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class CallbackList(Generic[T]):
    """Callbacks taking one value. ``fire`` schedules them on the running loop rather than
    calling them inline, so a subscriber never runs inside the code that changed the state;
    ``fire_threadsafe`` does the same from a driver's own thread."""

    def __init__(self) -> None:
        self._callbacks: dict[int, Callable[[T], None]] = {}
        self._tokens = itertools.count()

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        token = next(self._tokens)
        self._callbacks[token] = callback

        def unsubscribe() -> None:
            self._callbacks.pop(token, None)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._callbacks)

    def fire(self, value: T) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop is running (set-up code), so nothing can be interrupted: call now.
            self._deliver(value)
            return
        loop.call_soon(self._deliver, value)

    def fire_threadsafe(self, loop: asyncio.AbstractEventLoop, value: T) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, value)

    def _deliver(self, value: T) -> None:
        # A snapshot: callbacks may unsubscribe (or subscribe others) while being called.
        for token, callback in list(self._callbacks.items()):
            if token not in self._callbacks:
                continue
            try:
                callback(value)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("callback %r failed", callback)
