"""Audio latency in the receive buffer: it holds back as much as the measured jitter needs
and gives back what no take needed (a stall's burst: the soak, bench/soak.py, found it kept
for the rest of the call), but never the margin jitter needs. Time is a fake clock: blocks
arrive and the mixer takes at scripted instants."""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from appliance.media.remote import MAX_PREBUFFER_BLOCKS, PERIOD, TRIM_WINDOW, JitterBuffer
from hal.audio.base import FRAME_SAMPLES, Pcm
from tests.clock import ManualClock

BLOCK = FRAME_SAMPLES


def numbered(position: int) -> Pcm:
    """A block whose samples count up from ``position``: what comes out tells what was kept."""
    return (np.arange(position, position + BLOCK) % 30_000).astype(np.int16)


def position_of(pcm: Pcm) -> int:
    return int(pcm[0])


def simulate(
    arrivals: list[tuple[float, int]], takes: int, phase: float
) -> tuple[JitterBuffer, list[Pcm | None], list[int]]:
    """Blocks arrive at (time, stream position); the mixer takes one every PERIOD from
    ``phase`` on. Returns the buffer, what each take gave and what stayed queued after it."""
    clock = ManualClock()
    buffer = JitterBuffer(clock)
    pending = deque(arrivals)
    played: list[Pcm | None] = []
    queued: list[int] = []
    for tick in range(takes):
        at = phase + tick * PERIOD
        while pending and pending[0][0] <= at:
            clock.now, position = pending.popleft()
            buffer.put(numbered(position), position)
        clock.now = at
        played.append(buffer.take(BLOCK))
        queued.append(buffer.queued)
    return buffer, played, queued


def steady(first: int, count: int, offset: float) -> list[tuple[float, int]]:
    return [(k * PERIOD + offset, k * BLOCK) for k in range(first, first + count)]


def test_a_steady_stream_plays_each_block_at_the_first_take_after_it_arrives() -> None:
    buffer, played, queued = simulate(steady(0, 500, 0.001), takes=400, phase=0.006)
    assert buffer.underruns == 0
    assert all(q == 0 for q in queued)  # nothing waits beyond the next take
    assert [position_of(p) for p in played[-3:] if p is not None] == [
        (k * BLOCK) % 30_000 for k in range(397, 400)
    ]


def test_a_burst_after_a_stall_is_given_back_to_the_live_audio() -> None:
    # Blocks 50-55 are held up 120 ms on the way and arrive at once, with block 56.
    arrivals = steady(0, 50, 0.001)
    burst_at = 56 * PERIOD + 0.001
    arrivals += [(burst_at, k * BLOCK) for k in range(50, 56)] + steady(56, 500, 0.001)
    buffer, played, queued = simulate(arrivals, takes=56 + 8 * TRIM_WINDOW, phase=0.006)
    assert queued[55] == 0  # before: each block plays at the first take after it arrives
    assert max(queued[56:]) >= 4 * BLOCK  # the burst queued up
    assert buffer.trimmed >= 4 * BLOCK  # and was given back
    assert queued[-1] == 0  # the delay is gone: each block plays as it comes again
    last = played[-1]
    assert last is not None
    assert position_of(last) == ((56 + 8 * TRIM_WINDOW - 1) * BLOCK) % 30_000
    # Only the stall itself went short: no take after the restart did.
    restarted = next(i for i in range(56, len(played)) if played[i] is not None)
    assert all(p is not None for p in played[restarted:])


def test_jitter_keeps_its_margin() -> None:
    # Blocks come in pairs every 40 ms: 20 ms of jitter, on time on average.
    arrivals = [((k // 2) * 2 * PERIOD + PERIOD + 0.001, k * BLOCK) for k in range(1000)]
    buffer, played, _ = simulate(arrivals, takes=900, phase=0.006)
    # Perhaps one take before the jitter was first measured, never again.
    assert buffer.underruns <= 1
    first_short = max((i for i, p in enumerate(played) if p is None), default=0)
    assert first_short < 2 * TRIM_WINDOW
    assert all(p is not None for p in played[first_short + 1 :])


def test_the_restart_waits_for_the_jitter_measured() -> None:
    rng = random.Random(17)
    arrivals = []
    last = 0.0
    for k in range(1500):  # up to 50 ms late, in order, at random
        last = max(last, k * PERIOD + rng.uniform(0, 0.05))
        arrivals.append((last, k * BLOCK))
    buffer, played, queued = simulate(arrivals, takes=1400, phase=0.001)
    assert 0.03 < buffer.jitter < 0.06
    assert buffer.prebuffer(BLOCK) in (2 * BLOCK, 3 * BLOCK)  # whole blocks covering it
    # After the first seconds, hardly a take goes short; the queue stays within the
    # jitter's worth of blocks.
    late_shorts = sum(1 for p in played[500:] if p is None)
    assert late_shorts <= 5
    assert max(queued[500:]) <= (MAX_PREBUFFER_BLOCKS // 2) * BLOCK


def test_a_pause_in_the_stream_is_not_jitter() -> None:
    # The far end mutes for 5 s: nothing arrives, and its stream clock moves on as much.
    arrivals = steady(0, 200, 0.001) + steady(450, 200, 0.001)
    buffer, played, queued = simulate(arrivals, takes=640, phase=0.006)
    assert buffer.jitter < 0.002
    assert buffer.underruns == 1  # the pause itself
    assert queued[-1] == 0
    assert all(p is not None for p in played[451:])


def test_without_a_clock_of_its_own_a_block_plays_at_once() -> None:
    buffer = JitterBuffer(ManualClock())
    buffer.put(numbered(0))
    assert buffer.take(BLOCK) is not None
    assert buffer.take(BLOCK) is None  # nothing more: an underrun, reported
    assert buffer.underruns == 1


def test_big_chunks_into_a_full_buffer_still_start_it() -> None:
    # Repacked packets (several Opus frames in one, after a gap) decode to big chunks. A
    # buffer waiting for the most jitter it allows (8 blocks) must start once it is full:
    # dropping whole chunks to stay within its bound left it short of that for good, and the
    # far kit silent (the virtual kit's mute test, once).
    clock = ManualClock()
    buffer = JitterBuffer(clock)
    for k in range(10):  # half a second of jitter measured
        clock.now = k * PERIOD + (0.5 if k % 2 else 0.0)
        buffer.put(numbered(k * BLOCK), k * BLOCK)
    while buffer.take(BLOCK) is not None:
        pass
    assert buffer.prebuffer(BLOCK) == MAX_PREBUFFER_BLOCKS * BLOCK
    position, played = 10 * BLOCK, []
    for _ in range(10):
        buffer.put(np.concatenate([numbered(position + i * BLOCK) for i in range(6)]), position)
        position += 6 * BLOCK
        played.append(buffer.take(BLOCK))
    assert any(pcm is not None for pcm in played)
