"""Where samples sit in time: a ring of a stream's recent samples addressed by absolute
position, and the clock that says when each of them passed.

Playback and capture are two such streams. The echo canceller needs, for every captured
sample, the played sample whose echo it may hold; both are found through these clocks.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hal.audio.base import SAMPLE_RATE, Pcm

CLOCK_WINDOW = 100  # blocks (2 s of 20 ms frames) the clock's origin is the earliest of
RESTART_BLOCKS = 5  # this many blocks in a row that late mean the stream restarted later
RESTART_SECONDS = 0.02


class SampleRing:
    """The last ``capacity`` samples of a stream. Position 0 is the stream's first sample;
    ``end`` is the position after the newest."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ring = np.zeros(capacity, dtype=np.int16)
        self.end = 0

    def append(self, pcm: Pcm) -> int:
        """Add samples; returns the position of the first."""
        start = self.end
        samples = pcm[-self.capacity :]
        offset = (start + len(pcm) - len(samples)) % self.capacity
        first = min(len(samples), self.capacity - offset)
        self._ring[offset : offset + first] = samples[:first]
        self._ring[: len(samples) - first] = samples[first:]
        self.end += len(pcm)
        return start

    def read(self, start: int, count: int) -> Pcm:
        """Samples ``start`` to ``start + count``; zeros for any not held (not yet written,
        or overwritten)."""
        out = np.zeros(count, dtype=np.int16)
        low = max(start, self.end - self.capacity, 0)
        high = min(start + count, self.end)
        if high <= low:
            return out
        index = np.arange(low, high) % self.capacity
        out[low - start : high - start] = self._ring[index]
        return out


class StreamClock:
    """Sample ``n`` of a paced stream passes at ``origin + n / rate``.

    Each block is reported with the time it was handed over and the position that time
    belongs to. The event loop wakes late, never early, so the earliest ``time - position /
    rate`` seen lately is the stream's true origin and the jitter of every later wake-up
    drops out. A stream that stalls and restarts later moves its origin after a few blocks.
    """

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self.rate = rate
        self._offsets: deque[float] = deque(maxlen=CLOCK_WINDOW)

    @property
    def started(self) -> bool:
        return bool(self._offsets)

    def add(self, at: float, position: int) -> None:
        offset = at - position / self.rate
        self._offsets.append(offset)
        if len(self._offsets) > RESTART_BLOCKS:
            recent = list(self._offsets)[-RESTART_BLOCKS:]
            if min(recent) > min(self._offsets) + RESTART_SECONDS:
                self._offsets = deque(recent, maxlen=CLOCK_WINDOW)

    @property
    def origin(self) -> float:
        if not self._offsets:
            raise RuntimeError("the stream has not started")
        return min(self._offsets)

    def time_of(self, position: float) -> float:
        return self.origin + position / self.rate

    def position_at(self, at: float) -> float:
        return (at - self.origin) * self.rate
