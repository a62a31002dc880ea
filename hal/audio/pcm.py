"""PCM helpers: make a tone, find which tone is playing, measure a level.

Tests and benchmarks use these to prove which kit is heard: every fake microphone plays its
own frequency, so the dominant frequency of what a route played names the kit it came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm

FULL_SCALE = 32767


def dbfs_to_amplitude(dbfs: float) -> float:
    """Peak amplitude (in int16 steps) of a sine at ``dbfs``."""
    return FULL_SCALE * 10 ** (dbfs / 20)


class ToneGenerator:
    """A sine whose phase carries on across frames and across frequency changes, so
    consecutive frames join without clicks."""

    def __init__(
        self,
        frequency: float,
        *,
        level_dbfs: float = -10.0,
        rate: int = SAMPLE_RATE,
    ) -> None:
        if not 0 < frequency < rate / 2:
            raise ValueError(f"frequency {frequency} Hz is outside (0, {rate / 2}) Hz")
        self.frequency = frequency
        self.rate = rate
        self.amplitude = dbfs_to_amplitude(level_dbfs)
        self._phase = 0.0  # radians, of the next sample

    def set_frequency(self, frequency: float) -> None:
        if not 0 < frequency < self.rate / 2:
            raise ValueError(f"frequency {frequency} Hz is outside (0, {self.rate / 2}) Hz")
        self.frequency = frequency

    def next(self, samples: int = FRAME_SAMPLES) -> Pcm:
        step = 2 * math.pi * self.frequency / self.rate
        phases = self._phase + step * np.arange(samples, dtype=np.float64)
        self._phase = (self._phase + step * samples) % (2 * math.pi)
        return np.rint(self.amplitude * np.sin(phases)).astype(np.int16)


def tone(
    frequency: float,
    *,
    level_dbfs: float = -10.0,
    rate: int = SAMPLE_RATE,
    frame_samples: int = FRAME_SAMPLES,
    frames: int | None = None,
) -> Iterator[Pcm]:
    """Frames of a continuous sine: ``frames`` of them, or endlessly when None."""
    generator = ToneGenerator(frequency, level_dbfs=level_dbfs, rate=rate)
    produced = 0
    while frames is None or produced < frames:
        yield generator.next(frame_samples)
        produced += 1


def dominant_frequency(pcm: npt.ArrayLike, rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency in ``pcm``, in Hz: a Hann-windowed FFT, refined between bins by
    fitting a parabola to the log magnitudes. 0.0 for silence or fewer than two samples."""
    samples = np.asarray(pcm, dtype=np.float64).ravel()
    if samples.size < 2:
        return 0.0
    samples = samples - samples.mean()
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if spectrum[peak] <= 0:
        return 0.0
    offset = 0.0
    if 0 < peak < spectrum.size - 1:
        left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        if denominator < 0:
            offset = 0.5 * (left - right) / denominator
    return float((peak + offset) * rate / samples.size)


def rms_dbfs(pcm: npt.ArrayLike) -> float:
    """The RMS level relative to a full-scale sine (AES17), so a sine with peaks at -10 dBFS
    reads -10. ``-inf`` for silence or no samples."""
    samples = np.asarray(pcm, dtype=np.float64).ravel()
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(samples * samples)))
    if rms == 0:
        return -math.inf
    return 20 * math.log10(rms * math.sqrt(2) / FULL_SCALE)
