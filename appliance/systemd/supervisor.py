"""The daemon's side of supervision: readiness, status and stopping notifications, the
event-loop watchdog, and background tasks whose crash must end the process (non-zero,
so systemd restarts it) instead of leaving a half-working appliance."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from appliance.calls import Calls
from appliance.systemd.notify import Notifier
from appliance.systemd.status import CallState, describe_call_state, follow_calls
from appliance.systemd.watchdog import keep_alive, watchdog_interval

log = logging.getLogger(__name__)


class BackgroundTaskFailed(RuntimeError):
    """A supervised task crashed; the daemon stopped cleanly and must exit non-zero."""


class Supervisor:
    def __init__(
        self,
        notifier: Notifier,
        *,
        watchdog_interval: float | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.watchdog_interval = watchdog_interval
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        self.failed_task: str | None = None
        self.status = ""
        self._stopping = False
        self._watched: set[asyncio.Task[Any]] = set()
        self._own: list[asyncio.Task[Any]] = []  # watchdog and status: cancelled on close

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        on_failure: Callable[[], None] | None = None,
    ) -> Supervisor:
        """From ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``; raises
        ``NotifyError`` when they hold something unusable."""
        return cls(
            Notifier.from_environ(environ),
            watchdog_interval=watchdog_interval(environ),
            on_failure=on_failure,
        )

    # --- tasks ---------------------------------------------------------------------------

    def watch(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Supervise ``task``: if it ends with an exception, log it and ask the daemon to
        stop (``run`` then raises ``BackgroundTaskFailed``). Cancelling it is fine."""
        self._watched.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._watched.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is None:
            return
        log.critical(
            "background task %r crashed; stopping so the service restarts",
            task.get_name(),
            exc_info=err,
        )
        if self.failure is None:
            self.failure, self.failed_task = err, task.get_name()
        if self.on_failure is not None:
            self.on_failure()

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise BackgroundTaskFailed(
                f"background task {self.failed_task!r} crashed: {self.failure!r}"
            ) from self.failure

    # --- notifications -------------------------------------------------------------------

    def start(self) -> None:
        """Start the watchdog pings (the watchdog is armed once READY=1 is sent, so a
        ping before that is harmless) and dump every thread's stack on SIGABRT, the
        watchdog's kill signal, so the journal shows where the loop was stuck."""
        if self.watchdog_interval is not None:
            if not faulthandler.is_enabled():
                faulthandler.enable(file=sys.stderr, all_threads=True)
            log.info("watchdog: pinging every %.1f s", self.watchdog_interval)
            self._spawn(keep_alive(self.notifier, self.watchdog_interval), "watchdog")

    def set_status(self, text: str) -> None:
        if text == self.status:
            return
        self.status = text
        if not self._stopping:
            self.notifier.send(f"STATUS={text}")

    def ready(self) -> None:
        self.notifier.send("READY=1", f"STATUS={self.status or 'Ready'}")

    def follow_calls(self, calls: Calls) -> None:
        """STATUS= lines and journal call lines from now on (the current state at once, so
        a READY=1 right after carries it)."""
        self.set_status(describe_call_state(CallState(calls.uid, state=calls.state.value)))
        self._spawn(follow_calls(calls, self.set_status), "status")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._own.append(self.watch(asyncio.create_task(coro, name=name)))

    def stopping(self, why: str = "Stopping") -> None:
        if self._stopping:
            return
        self._stopping = True
        self.status = why
        self.notifier.send("STOPPING=1", f"STATUS={why}")

    async def close(self) -> None:
        """Stop the watchdog and status tasks; tasks others asked us to watch are theirs
        to end, we only stop watching them."""
        for task in self._watched:
            task.remove_done_callback(self._task_done)
        self._watched.clear()
        own, self._own = self._own, []
        for task in own:
            task.cancel()
        await asyncio.gather(*own, return_exceptions=True)
        self.notifier.close()
