"""Which output the call's audio plays on, and which outputs are there to choose from.

A route whose device fails (a write or an open raises AudioError) is dropped from the
choice and the call falls back to the speaker (else the first route left). The failed
device is then tried again, after ``RETRY_FIRST`` seconds and less and less often up to
``RETRY_MAX``: once it opens it is offered again and, if the call was playing on it when it
failed, the call moves back to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from appliance.errors import CallsError
from appliance.tasks import TaskSet
from hal.audio.base import AudioError, AudioOutput, Route
from hal.errors import HardwareError

if TYPE_CHECKING:  # the media stack (aiortc) loads with the first call, not at start-up
    from appliance.media.remote import AudioMixer

log = logging.getLogger(__name__)

ORDER = (Route.SPEAKER, Route.EARPIECE, Route.HEADPHONES, Route.BLUETOOTH)
# Private devices take over when they arrive, as they do on a phone.
TAKES_OVER = frozenset({Route.HEADPHONES, Route.BLUETOOTH})
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


class AudioRouter:
    def __init__(
        self,
        outputs: dict[Route, AudioOutput],
        on_modes_changed: Callable[[list[Route]], None],
        on_route_changed: Callable[[Route], None],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._outputs = outputs
        self._sleep = sleep  # the retry schedule's clock (tests pass one that records)
        self._on_modes_changed = on_modes_changed
        self._on_route_changed = on_route_changed
        self._failed: set[Route] = set()
        self._retrying: dict[Route, asyncio.Task[None]] = {}
        self._fell_back_from: Route | None = None  # the route to return to once it works
        self._tasks = TaskSet(log)  # refreshes and retries: a failure is logged
        self._mixer: AudioMixer | None = None
        self._opened: AudioOutput | None = None
        # Whoever else plays on the outputs between calls (the ringer) lets go when awaited.
        self._releasers: list[Callable[[], Awaitable[None]]] = []
        self._available = self._compute_available()
        self.current: Route | None = self._available[0] if self._available else None
        self._unsubscribe = [
            output.on_presence_changed(self._presence_handler(route))
            for route, output in outputs.items()
        ]

    @property
    def available(self) -> list[Route]:
        return list(self._available)

    @property
    def in_use(self) -> bool:
        """A call's audio is bound to the routes."""
        return self._mixer is not None

    def add_releaser(self, release: Callable[[], Awaitable[None]]) -> None:
        """``release`` is awaited before the router opens an output, so that something
        playing between calls (the ringer) has closed it."""
        self._releasers.append(release)

    def _compute_available(self) -> list[Route]:
        return [
            route
            for route in ORDER
            if route in self._outputs and self._outputs[route].present and route not in self._failed
        ]

    async def select(self, mode: Route) -> None:
        if mode not in self._available:
            raise CallsError(
                "audio-mode-unavailable",
                f"{mode.value} is not available now (available: "
                f"{', '.join(r.value for r in self._available) or 'none'})",
            )
        self._fell_back_from = None  # chosen by hand: stay on it
        await self._switch(mode)

    async def bind(self, mixer: AudioMixer | None) -> None:
        """Play the call's mix (or nothing, with None) on the current route."""
        self._mixer = mixer
        await self._apply()

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for task in self._retrying.values():
            task.cancel()
        self._retrying.clear()
        await self.bind(None)

    async def _switch(self, mode: Route | None) -> None:
        changed = mode != self.current
        self.current = mode
        await self._apply()
        if changed and mode is not None:
            self._on_route_changed(mode)

    async def _apply(self) -> None:
        wanted = self._outputs.get(self.current) if self.current and self._mixer else None
        if wanted is not self._opened:
            if self._mixer is not None:
                self._mixer.set_output(None)
            if self._opened is not None:
                with contextlib.suppress(HardwareError):
                    await self._opened.close()
            self._opened = None
            if wanted is not None:
                for release in list(self._releasers):
                    await release()
                try:
                    await wanted.open()
                    self._opened = wanted
                except AudioError as err:
                    await self.output_failed(wanted, err)
                    return
        if self._mixer is not None:
            self._mixer.set_output(self._opened)

    def _presence_handler(self, route: Route) -> Callable[[bool], None]:
        return lambda present: self._presence(route, present)

    def _presence(self, route: Route, present: bool) -> None:
        if present:
            self._failed.discard(route)
        self._tasks.spawn(
            self._refresh(newly_present=route if present else None), f"{route.value} presence"
        )

    async def output_failed(self, output: AudioOutput, err: AudioError) -> None:
        log.warning("audio route %s failed: %s", output.route.value, err)
        route = output.route
        self._failed.add(route)
        if self.current == route:
            self._fell_back_from = route
        if self._opened is output:
            self._opened = None
        if route not in self._retrying:
            task = asyncio.create_task(self._retry(route, output), name=f"retry {route.value}")
            self._retrying[route] = task
        await self._refresh()

    async def _retry(self, route: Route, output: AudioOutput) -> None:
        """Tries the failed device again until it opens (or the route comes back some
        other way, such as a headset reconnecting)."""
        delay = RETRY_FIRST
        try:
            while route in self._failed:
                await self._sleep(delay)
                delay = min(2 * delay, RETRY_MAX)
                if route not in self._failed:
                    break
                try:
                    await output.open()
                    await output.close()
                except HardwareError:
                    continue
                log.info("audio route %s works again", route.value)
                self._failed.discard(route)
                await self._refresh()
        finally:
            self._retrying.pop(route, None)

    def report_failure(self, output: AudioOutput, err: AudioError) -> None:
        """For the mixer, which runs in a task and reports synchronously."""
        self._tasks.spawn(self.output_failed(output, err), f"{output.route.value} failure")

    async def _refresh(self, newly_present: Route | None = None) -> None:
        available = self._compute_available()
        if available != self._available:
            self._available = available
            self._on_modes_changed(list(available))
        if newly_present in TAKES_OVER and newly_present in available:
            await self._switch(newly_present)
        elif self._fell_back_from in available:
            back, self._fell_back_from = self._fell_back_from, None
            await self._switch(back)
        elif self.current not in available:
            fallback = Route.SPEAKER if Route.SPEAKER in available else None
            await self._switch(fallback or (available[0] if available else None))
