"""The mixer's soft limiter: several loud participants summed never clip.

Look-ahead-free (it adds no latency): the gain follows each millisecond's peak through a
soft-knee curve, drops at once when a peak needs it, holds while peaks keep coming (the
beats of several voices, a pitch period) and then recovers slowly, so the output peak stays
below the ceiling without the distortion of a hard clip or of a gain that wobbles."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hal.audio.base import SAMPLE_RATE, Pcm
from hal.audio.pcm import FULL_SCALE

BLOCK_SECONDS = 0.001
KNEE_DBFS = -6.0  # peaks below pass untouched
CEILING_DBFS = -1.0  # peaks never exceed this
HOLD_SECONDS = 0.03  # longer than a low voice's pitch period
RELEASE_SECONDS = 0.08  # time constant of the gain's recovery after the hold
MIN_GAIN = 1e-6  # -120 dB: far below what any int32 mix needs


class SoftLimiter:
    def __init__(
        self,
        *,
        knee_dbfs: float = KNEE_DBFS,
        ceiling_dbfs: float = CEILING_DBFS,
        hold_seconds: float = HOLD_SECONDS,
        release_seconds: float = RELEASE_SECONDS,
        rate: int = SAMPLE_RATE,
    ) -> None:
        if not knee_dbfs < ceiling_dbfs <= 0:
            raise ValueError("expected knee < ceiling <= 0 dBFS")
        self._knee = FULL_SCALE * 10 ** (knee_dbfs / 20)
        self._ceiling = FULL_SCALE * 10 ** (ceiling_dbfs / 20)
        self._block = max(1, round(BLOCK_SECONDS * rate))
        self._recovery = math.exp(-self._block / (release_seconds * rate))
        self._hold_blocks = round(hold_seconds * rate / self._block)
        self._held = 0  # blocks since the gain last had to drop
        self._gain = 1.0
        self.reduction_db = 0.0  # the deepest gain reduction of the last call, for meters

    def target_gain(self, peak: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The static curve: identity up to the knee, then a tanh that bends every larger
        peak smoothly under the ceiling (same slope at the knee, so no corner)."""
        span = self._ceiling - self._knee
        out = np.where(
            peak <= self._knee, peak, self._knee + span * np.tanh((peak - self._knee) / span)
        )
        gain: npt.NDArray[np.float64] = np.divide(out, peak, out=np.ones_like(peak), where=peak > 0)
        # A gain is in (0, 1] whatever the maths library returns: one bad value (an
        # emulated CPU's tanh gave -1058 for tanh(3)) must not stick as a negative gain.
        return np.clip(gain, MIN_GAIN, 1.0)

    def process(self, mix: npt.NDArray[np.integer] | npt.NDArray[np.floating]) -> Pcm:
        """A mix of any width (the int32 sum of participants) to int16 PCM."""
        x = np.asarray(mix, dtype=np.float64)
        n = len(x)
        if self._gain == 1.0 and (n == 0 or float(np.abs(x).max()) <= self._knee):
            # Nothing above the knee and no gain to recover (most of any call): every block
            # would hold a gain of 1, at a cost the event loop feels on a small CPU.
            self._held = 0
            self.reduction_db = 0.0
            return np.clip(np.rint(x), -FULL_SCALE - 1, FULL_SCALE).astype(np.int16)
        blocks = -(-n // self._block)
        padded = np.zeros(blocks * self._block)
        padded[:n] = np.abs(x)
        targets = self.target_gain(padded.reshape(blocks, self._block).max(axis=1))
        gains = np.empty(blocks * self._block)
        lowest = 1.0
        for b, target in enumerate(targets):
            previous = self._gain
            if target <= previous:
                self._held = 0
            else:
                self._held += 1
            if self._held <= self._hold_blocks:
                released = previous
            else:
                released = 1.0 - (1.0 - previous) * self._recovery
            gain = min(float(target), released)
            span = gains[b * self._block : (b + 1) * self._block]
            if gain <= previous:
                span[:] = gain  # attack at once: this block's peak must fit
            else:
                span[:] = np.linspace(previous, gain, self._block + 1)[1:]
            self._gain = gain
            lowest = min(lowest, gain)
        self.reduction_db = 20 * math.log10(lowest)
        y = np.rint(x * gains[:n])
        return np.clip(y, -FULL_SCALE - 1, FULL_SCALE).astype(np.int16)
