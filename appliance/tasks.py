"""Background tasks with an owner: ``TaskSet`` keeps each task until it is done (asyncio
holds only weak references), logs every failure, and cancels what is left on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any


class TaskSet:
    """``tasks.spawn(coro, "name")``; a task that raises is logged on ``log``: as a
    warning with its message for the ``expected`` kinds of error (a refusal someone can
    act on), with its traceback for anything else."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        prefix: str = "",
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        self._log = log
        self._prefix = prefix
        self._expected = expected
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.add(task)
        return task

    def add(self, future: asyncio.Future[Any]) -> None:
        """Track a task or future made elsewhere (an awaitable a callback returned)."""
        self._tasks.add(future)
        future.add_done_callback(self._done)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        return iter(list(self._tasks))

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def wait(self, timeout: float | None = None) -> None:
        """Until every task is done (or ``timeout`` passed); nothing is cancelled."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Cancel every task and wait until they have finished."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is None:
            return
        name = task.get_name() if isinstance(task, asyncio.Task) else "task"
        if isinstance(err, self._expected):
            self._log.warning("%s%s: %s", self._prefix, name, err)
        else:
            self._log.error("%s%s failed", self._prefix, name, exc_info=err)
