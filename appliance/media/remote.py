"""What the kit receives: every participant's audio mixed onto the current route, and
their video handed to the view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from appliance.audio.limiter import SoftLimiter
from appliance.media.counters import MediaCounters
from appliance.media.levels import LevelMeter
from appliance.media.local import pcm_of
from appliance.media.view import View
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioError, AudioOutput, Pcm, Route

log = logging.getLogger(__name__)

PERIOD = FRAME_SAMPLES / SAMPLE_RATE  # 20 ms
MAX_BUFFER = 10 * FRAME_SAMPLES  # beyond 200 ms queued, drop the oldest: latency is bounded
# Over this many takes (1 s), slack that no take needed is given back (see JitterBuffer).
TRIM_WINDOW = 50
JITTER_WINDOW = 100  # arrivals (2 s of 20 ms blocks) over which jitter is measured
JITTER_PERCENTILE = 0.95
SAFETY = 0.004  # s of slack kept beyond the least seen: the loop's own timing noise
MAX_PREBUFFER_BLOCKS = 8  # a (re)start waits for at most 160 ms of jitter
SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)


class PlaybackHook(Protocol):
    """What the call's audio processing needs from the mixer: the echo canceller's
    reference, and a way to play the delay-measuring chirp."""

    def injection(self, samples: int) -> Pcm | None:
        """Samples to mix into the next block, if any."""

    def played(self, pcm: Pcm, route: Route | None, at: float) -> None:
        """``pcm`` was handed to ``route``'s output at loop time ``at`` (None: nothing
        played it)."""


class JitterBuffer:
    """Samples of one participant waiting for the mixer, held back by as much as the
    jitter measured on their arrivals needs, and no more.

    Each block's arrival time (``clock``) is compared with where it sits in the stream
    (``position``, in samples: the decoded frame's timestamp, so a lost packet is no
    lateness): the spread of those latenesses over the last ``JITTER_WINDOW`` blocks is the
    jitter. Playback (re)starts once a block and the jitter's worth of whole blocks are in.

    Every take notes its slack: how long before it the newest samples it played arrived.
    Over ``TRIM_WINDOW`` takes, whole blocks that stayed queued while the least slack seen
    still exceeded a block (plus ``SAFETY``) were never needed: they are dropped, as is a
    part block that stayed queued (delay that rides out no jitter at all, as the mixer takes
    whole blocks). So a stall's burst is given back and a steady stream plays as soon as it
    arrives; more jitter shows as an underrun (a block of silence) and a restart that waits
    for the jitter measured. ``trimmed`` counts the samples dropped that way, ``underruns``
    the takes that found too little."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        counters: MediaCounters | None = None,
    ) -> None:
        self._clock = clock
        self._counters = counters if counters is not None else MediaCounters()
        self._chunks: deque[tuple[Pcm, float]] = deque()  # samples, when they arrived
        self._size = 0
        self._playing = False
        self._next_position = 0  # where a block without a position of its own sits
        self._lateness: deque[float] = deque(maxlen=JITTER_WINDOW)
        self._low: int | None = None  # the least left queued after a take, this window
        self._slack: float | None = None  # the least slack of a take, this window
        self._takes = 0
        self.trimmed = 0
        self.underruns = 0

    @property
    def queued(self) -> int:
        return self._size

    @property
    def jitter(self) -> float:
        """Seconds from the earliest recent arrival to the latest but the latest twentieth
        (one lone hold-up is not jitter to wait for on every block), against the stream's
        own clock."""
        if len(self._lateness) < 2:
            return 0.0
        ordered = sorted(self._lateness)
        return ordered[int(JITTER_PERCENTILE * (len(ordered) - 1))] - ordered[0]

    def prebuffer(self, n: int) -> int:
        """Samples beyond the first ``n`` a (re)start waits for: whole blocks of ``n``
        covering the jitter measured."""
        blocks = math.ceil(self.jitter * SAMPLE_RATE / n - 1e-6)
        return min(MAX_PREBUFFER_BLOCKS, max(0, blocks)) * n

    def put(self, pcm: Pcm, position: int | None = None) -> None:
        at = self._clock()
        if position is None:
            position = self._next_position
        self._lateness.append(at - position / SAMPLE_RATE)
        self._next_position = position + len(pcm)
        self._chunks.append((pcm, at))
        self._size += len(pcm)
        if self._size > MAX_BUFFER:
            # Only the excess goes, not whole chunks: a chunk of several blocks (repacked
            # packets) dropped whole could leave less than a (re)start waits for, for good.
            self._drop(self._size - MAX_BUFFER, trimmed=False)

    def take(self, n: int) -> Pcm | None:
        if not self._playing:
            if self._size < n + self.prebuffer(n):
                return None
            self._playing = True
            self._new_window()
        if self._size < n:
            self._playing = False  # underflow: play silence and build up again
            self.underruns += 1
            self._counters.audio_underruns += 1
            return None
        now = self._clock()
        out = np.empty(n, dtype=np.int16)
        filled = 0
        newest = now
        while filled < n:
            chunk, arrived = self._chunks[0]
            used = min(len(chunk), n - filled)
            out[filled : filled + used] = chunk[:used]
            filled += used
            newest = arrived
            if used == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = (chunk[used:], arrived)
        self._size -= n
        self._watch_slack(n, now - newest)
        return out

    def _new_window(self) -> None:
        self._low, self._slack, self._takes = None, None, 0

    def _watch_slack(self, n: int, slack: float) -> None:
        self._low = self._size if self._low is None else min(self._low, self._size)
        self._slack = slack if self._slack is None else min(self._slack, slack)
        self._takes += 1
        if self._takes < TRIM_WINDOW:
            return
        low, least = self._low, self._slack
        self._new_window()
        spare_blocks = math.floor((least - SAFETY) * SAMPLE_RATE / n)
        blocks = max(0, min(low // n, spare_blocks))
        surplus = blocks * n + low % n
        if surplus > 0:
            self._drop(surplus)

    def _drop(self, samples: int, *, trimmed: bool = True) -> None:
        """The oldest ``samples`` go: the queue catches up with the live audio
        (``trimmed``: counted as slack given back)."""
        while samples > 0 and self._chunks:
            chunk, arrived = self._chunks[0]
            if len(chunk) <= samples:
                self._chunks.popleft()
                used = len(chunk)
            else:
                self._chunks[0] = (chunk[samples:], arrived)
                used = samples
            samples -= used
            self._size -= used
            if trimmed:
                self.trimmed += used


class AudioMixer:
    """Mixes every remote participant every 20 ms, limits the sum so it never clips, and
    writes it to the current route.

    Silence is written when nobody speaks so a real device keeps its clock and never
    underruns. A route that fails is reported once through ``on_output_failed``, and again
    if it fails after it played once more. What was played, and where, goes to
    ``playback`` (the echo canceller's reference).
    """

    def __init__(
        self,
        on_output_failed: Callable[[AudioOutput, AudioError], None],
        playback: PlaybackHook | None = None,
        counters: MediaCounters | None = None,
    ) -> None:
        self._counters = counters if counters is not None else MediaCounters()
        self._sources: dict[str, JitterBuffer] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._output: AudioOutput | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_output_failed = on_output_failed
        self._playback = playback
        self.limiter = SoftLimiter()
        self.levels: dict[str, LevelMeter] = {}
        self.taps: list[Callable[[Pcm], None]] = []
        self._failed_output: AudioOutput | None = None  # its failure was reported
        self.block_failures = 0  # blocks that raised (logged once per kind of error)

    @property
    def output(self) -> AudioOutput | None:
        return self._output

    def set_output(self, output: AudioOutput | None) -> None:
        self._output = output

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audio mixer")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._readers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._readers.clear()
        self._sources.clear()

    def add_track(self, uid: str, track: MediaStreamTrack) -> None:
        self.remove(uid)
        self._sources[uid] = JitterBuffer(counters=self._counters)
        self.levels[uid] = LevelMeter()
        self._readers[uid] = asyncio.create_task(self._read(uid, track), name=f"audio {uid}")

    def remove(self, uid: str) -> None:
        reader = self._readers.pop(uid, None)
        if reader is not None:
            reader.cancel()
        self._sources.pop(uid, None)
        self.levels.pop(uid, None)

    async def _read(self, uid: str, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            position = _position(frame)
            if frame.sample_rate == SAMPLE_RATE and frame.format.name == "s16":
                chunks = [pcm_of(frame)]
            else:
                chunks = [pcm_of(f) for f in resampler.resample(frame)]
                position = None  # the resampler holds some back: count on from the last
            source = self._sources.get(uid)
            if source is None:
                return
            for pcm in chunks:
                source.put(pcm, position)
                position = None

    def mix_once(self) -> Pcm:
        total = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for uid, source in self._sources.items():
            pcm = source.take(FRAME_SAMPLES)
            self.levels[uid].add(pcm)
            if pcm is not None:
                total += pcm
        extra = self._playback.injection(FRAME_SAMPLES) if self._playback is not None else None
        if extra is not None:
            total += extra
        return self.limiter.process(total)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        reported: set[type[BaseException]] = set()
        while True:
            deadline += PERIOD
            delay = deadline - loop.time()
            if delay < -5 * PERIOD:  # the loop stalled: resynchronise, don't burst
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))
            try:
                await self._play_block(loop.time)
            except Exception as err:
                # A fault in one block (a tap, the echo canceller's hook) must not silence
                # the call for good: the task would end unseen and the route run dry.
                self.block_failures += 1
                if type(err) not in reported:
                    reported.add(type(err))
                    log.exception("audio mixer: a block failed; playing on")

    async def _play_block(self, now: Callable[[], float]) -> None:
        """Mixes one block and writes it to the route."""
        pcm = self.mix_once()
        for tap in list(self.taps):
            tap(pcm)
        output = self._output
        handed_at = now()
        played: Route | None = None
        if output is not None:
            try:
                await output.write(pcm)
                played = output.route
                self._failed_output = None  # it works (again): its next failure is news
            except AudioError as err:
                if output is not self._failed_output:
                    self._failed_output = output
                    self._on_output_failed(output, err)
        if self._playback is not None:
            self._playback.played(pcm if played else SILENCE, played, handed_at)


def _position(frame: av.AudioFrame) -> int | None:
    """The frame's first sample in its stream (from its RTP timestamp), if it has one."""
    if frame.pts is None or frame.time_base is None:
        return None
    return round(frame.pts * frame.time_base * SAMPLE_RATE)


class RemoteVideo:
    """Reads each participant's video track and hands decoded frames to the view."""

    def __init__(self, view: View | None, counters: MediaCounters | None = None) -> None:
        self._view = view
        self._counters = counters if counters is not None else MediaCounters()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self.latest: dict[str, av.VideoFrame] = {}
        self.frames: dict[str, int] = {}

    def add_track(self, uid: str, track: MediaStreamTrack) -> None:
        self.remove(uid)
        self.frames.setdefault(uid, 0)
        self._readers[uid] = asyncio.create_task(self._read(uid, track), name=f"video {uid}")

    def remove(self, uid: str) -> None:
        reader = self._readers.pop(uid, None)
        if reader is not None:
            reader.cancel()
        self.latest.pop(uid, None)
        if self._view is not None:
            self._view.forget(uid)

    async def stop(self) -> None:
        readers = list(self._readers.values())
        for uid in list(self._readers):
            self.remove(uid)
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self, uid: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            self.latest[uid] = frame
            self.frames[uid] = self.frames.get(uid, 0) + 1
            self._counters.frames_decoded += 1
            if self._view is not None:
                self._view.show_video(uid, frame)
