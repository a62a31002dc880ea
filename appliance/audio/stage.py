"""One call's room audio processing.

The mixer reports every block it hands to the route (``played``) and mixes in what the
stage asks for (``injection``: the delay-measuring chirp). The microphone pump hands every
captured block to ``process``, which pairs it with the played samples whose echo it may
hold and runs the route's engine (in a worker thread: the library is CPU work).

Pairing: each stream has a jitter-free clock (``StreamClock``). A captured sample that
passed at time t may hold the echo of what was played at t - delay, where delay is the
route's measured playback-to-capture delay. The reference is taken ``LEAD_SECONDS`` earlier
still, so the echo always comes after its reference, as a canceller needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from appliance.audio.budget import CpuBudget
from appliance.audio.delay import (
    MAX_DELAY_SECONDS,
    MIN_CONFIDENCE,
    EchoDelay,
    EchoDelayStore,
    chirp,
    locate,
    new_delay,
)
from appliance.audio.engines import Engine, Libraries, Processed
from appliance.audio.settings import RoomAudioConfig
from appliance.audio.timeline import SampleRing, StreamClock
from hal.audio.base import SAMPLE_RATE, Pcm, Route

log = logging.getLogger(__name__)

RING_SECONDS = 2.0
LEAD_SECONDS = 0.01
RELOCK_SAMPLES = round(0.002 * SAMPLE_RATE)  # re-align only past 2 ms of clock drift
# Re-alignments are logged once per this many (a jittery clock re-aligns tens of times a
# second, which would flood the journal on the SD card).
REALIGN_LOG_EVERY = 100
SETTLE_SECONDS = 0.3  # capture after a route change before the chirp
EARLY_SECONDS = 0.05  # the chirp is searched from this long before it was played
MEASURE_TIMEOUT = 5.0

Warn = Callable[[str, str, str], None]  # (code, device, message)


class ProcessingStage:
    def __init__(
        self,
        config: RoomAudioConfig,
        libraries: Libraries,
        delays: EchoDelayStore,
        warn: Warn | None = None,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.config = config
        self._cpu_clock = cpu_clock  # the worker thread's CPU time
        self._budget = CpuBudget()
        self.too_slow = False  # processing was given up: this CPU could not keep up
        self._libraries = libraries
        self._delays = delays
        self._warn = warn
        ring = round(RING_SECONDS * SAMPLE_RATE)
        self._played = SampleRing(ring)
        self._played_clock = StreamClock()
        self._captured = SampleRing(ring)
        self._captured_clock = StreamClock()
        self._captured_more = asyncio.Event()
        self.route: Route | None = None  # where the last played block went
        self._engines: dict[Route | None, Engine | None] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio processing")
        self._lag: int | None = None  # reference position minus capture position
        self.realignments = 0
        self._engine_failed = False
        # The chirp: samples still to inject, and where it went once played.
        self._chirp: Pcm | None = None
        self._chirp_sent = 0
        self._chirp_blocks: list[tuple[bool, bool]] = []  # (first, last) of injected blocks
        self._chirp_start: int | None = None
        self._chirp_route: Route | None = None
        self._chirp_played = asyncio.Event()
        self._measuring: asyncio.Task[EchoDelay | None] | None = None
        self.measurements: list[EchoDelay] = []  # this call's, newest last
        self.last: Processed | None = None

    # --- the mixer's side ----------------------------------------------------------------

    def injection(self, samples: int) -> Pcm | None:
        """What to mix into the next block (the chirp), or None."""
        sound = self._chirp
        if sound is None:
            return None
        part = np.zeros(samples, dtype=np.int16)
        piece = sound[self._chirp_sent : self._chirp_sent + samples]
        part[: len(piece)] = piece
        first = self._chirp_sent == 0
        self._chirp_sent += samples
        last = self._chirp_sent >= len(sound)
        if last:
            self._chirp = None
        self._chirp_blocks.append((first, last))
        return part

    def played(self, pcm: Pcm, route: Route | None, at: float) -> None:
        """``pcm`` was handed to ``route``'s output at ``at`` (route None: nothing played,
        and ``pcm`` is silence)."""
        start = self._played.append(pcm)
        self._played_clock.add(at, start)
        if self._chirp_blocks:
            first, last = self._chirp_blocks.pop(0)
            if first:
                self._chirp_start, self._chirp_route = start, route
            elif route != self._chirp_route:
                self._chirp_route = None  # interrupted: the measurement is void
            if last:
                self._chirp_played.set()
        if route != self.route:
            self._route_changed(route)

    # --- the microphone's side -----------------------------------------------------------

    async def process(self, pcm: Pcm, at: float) -> Processed:
        """One captured block that was complete at ``at``: processed for the route in use,
        with its voice probability."""
        return (await self.process_blocks([(pcm, at)]))[0]

    async def process_blocks(self, blocks: Sequence[tuple[Pcm, float]]) -> list[Processed]:
        """Captured blocks, in order, each with the loop time it was complete at: processed
        in one trip to the worker thread (a loop that fell behind catches up at once; one
        trip per block would cap the blocks a second at the trips a busy loop can make)."""
        work: list[tuple[Pcm, Pcm | None]] = []
        engine = self._engine(self.route)
        if self._engine_failed:
            engine = None
        for pcm, at in blocks:
            start = self._captured.append(pcm)
            self._captured_clock.add(at, start + len(pcm))
            far = None
            if engine is not None and engine.cancels_echo:
                far = self._reference(start, len(pcm), engine)
            work.append((pcm, far))
        self._captured_more.set()
        if engine is None:
            done = [Processed(pcm, None) for pcm, _ in work]
        else:
            loop = asyncio.get_running_loop()
            try:
                done, cpu = await loop.run_in_executor(
                    self._executor, _process_all, engine, work, self._cpu_clock
                )
                audio = sum(len(pcm) for pcm, _ in work) / SAMPLE_RATE
                if self._budget.add(cpu, audio):
                    self._too_slow(engine)
            except Exception as err:  # a library fault must not silence the microphone
                log.exception(
                    "audio processing (%s) failed; sending the microphone as it is", engine.name
                )
                self._engine_failed = True
                if self._warn is not None:
                    self._warn("audio-processing-failed", "audio", f"{engine.name}: {err}")
                done = [Processed(pcm, None) for pcm, _ in work]
        if done:
            self.last = done[-1]
        return done

    def _too_slow(self, engine: Engine) -> None:
        """This CPU cannot process the microphone in real time: it goes out as it is."""
        self._engine_failed = True
        self.too_slow = True
        message = (
            f"{engine.name} needs {self._budget.cost * 1000:.0f} ms of CPU a second of audio: "
            "this CPU cannot keep up; sending the microphone unprocessed"
        )
        log.warning("audio processing: %s", message)
        if self._warn is not None:
            self._warn("audio-processing-too-slow", "audio", message)

    def _engine(self, route: Route | None) -> Engine | None:
        if route not in self._engines:
            processing = route is not None and self.config.processes(route)
            engine = self._libraries.engine(self.config, processing=processing)
            where = route.value if route is not None else "no route"
            log.info("audio on %s: %s", where, engine.name if engine else "unprocessed")
            self._engines[route] = engine
        return self._engines[route]

    def delay_seconds(self, route: Route | None) -> float | None:
        measured = self._delays.get(route) if route is not None else None
        return measured.delay_ms / 1000 if measured is not None else None

    def _reference(self, start: int, count: int, engine: Engine) -> Pcm:
        if not self._played_clock.started:
            return np.zeros(count, dtype=np.int16)
        delay = self.delay_seconds(self.route)
        # Unmeasured: the reference is what played as this was captured, and the canceller
        # finds the delay itself.
        lead = LEAD_SECONDS if delay is not None else 0.0
        passed = self._captured_clock.time_of(start)
        lag = round(self._played_clock.position_at(passed - (delay or 0.0) + lead)) - start
        if self._lag is None or abs(lag - self._lag) > RELOCK_SAMPLES:
            if self._lag is not None:
                if self.realignments % REALIGN_LOG_EVERY == 0:
                    log.info(
                        "echo reference re-aligned by %.1f ms (%d re-alignments so far)",
                        (lag - self._lag) / 48,
                        self.realignments + 1,
                    )
                self.realignments += 1
            self._lag = lag
            engine.set_delay_ms(round(lead * 1000))
        return self._played.read(start + self._lag, count)

    # --- the echo delay ------------------------------------------------------------------

    def _route_changed(self, route: Route | None) -> None:
        log.debug("playback moved from %s to %s", self.route, route)
        self.route = route
        self._lag = None
        if self._measuring is not None:
            self._measuring.cancel()
            self._measuring = None
        if route is not None and self._measures(route):
            self._measuring = asyncio.create_task(self.measure(route), name="echo delay")

    def _measures(self, route: Route) -> bool:
        config = self.config
        return (
            config.measure_echo_delay != "off"
            and (config.measure_echo_delay == "every-call" or self._delays.get(route) is None)
            and config.echo_cancellation
            and config.processes(route)
            and self._libraries.module is not None
        )

    async def measure(self, route: Route) -> EchoDelay | None:
        """Play the chirp on ``route`` and find it in the capture: the delay is stored and
        returned, or None when no echo of it came back (no speaker, a headset, a fake)."""
        try:
            async with asyncio.timeout(MEASURE_TIMEOUT):
                await self._capture_reaches(
                    self._captured.end + round(SETTLE_SECONDS * SAMPLE_RATE)
                )
                if self.route != route:
                    return None
                sound = chirp()
                self._chirp_played.clear()
                self._chirp_start = None
                self._chirp_sent = 0
                self._chirp = sound
                await self._chirp_played.wait()
                start = self._chirp_start
                if start is None or self._chirp_route != route:
                    log.info("echo delay on %s: the route changed during the chirp", route.value)
                    return None
                played_at = self._played_clock.time_of(start)
                first = math.floor(self._captured_clock.position_at(played_at - EARLY_SECONDS))
                last = math.ceil(
                    self._captured_clock.position_at(
                        played_at + MAX_DELAY_SECONDS + len(sound) / SAMPLE_RATE
                    )
                )
                await self._capture_reaches(last)
        except TimeoutError:
            log.warning("echo delay on %s: the microphone gave too little to measure", route.value)
            return None
        finally:
            self._chirp = None
        found = locate(
            self._played.read(start, len(sound)), self._captured.read(first, last - first)
        )
        delay = self._captured_clock.time_of(first + found.offset) - played_at
        if found.confidence < MIN_CONFIDENCE:
            previous = self._delays.get(route)
            log.info(
                "echo delay on %s: no echo of the chirp came back (correlation %.2f); keeping %s",
                route.value,
                found.confidence,
                f"{previous.delay_ms:.1f} ms" if previous else "the canceller's own estimate",
            )
            return None
        measured = new_delay(route, delay, found.confidence)
        log.info(
            "echo delay on %s: %.1f ms (correlation %.2f)",
            route.value,
            measured.delay_ms,
            measured.confidence,
        )
        await self._delays.put(measured)
        self.measurements.append(measured)
        if self.route == route:
            self._lag = None  # align to the new delay from the next block on
        return measured

    async def _capture_reaches(self, position: int) -> None:
        while self._captured.end < position:
            self._captured_more.clear()
            await self._captured_more.wait()

    # --- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        if self._measuring is not None:
            self._measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._measuring
            self._measuring = None
        # The worker finishes the block it has (a few hundred microseconds) and stops.
        await asyncio.to_thread(self._executor.shutdown, wait=True)


def _process_all(
    engine: Engine, work: list[tuple[Pcm, Pcm | None]], cpu_clock: Callable[[], float]
) -> tuple[list[Processed], float]:
    """The worker thread's part: the blocks processed, and the CPU time that took."""
    start = cpu_clock()
    done = [engine.process(near, far) for near, far in work]
    return done, cpu_clock() - start
