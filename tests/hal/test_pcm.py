"""PCM helpers: tones, frequency detection, levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hal.audio.base import FRAME_SAMPLES
from hal.audio.pcm import ToneGenerator, dominant_frequency, rms_dbfs, tone


@pytest.mark.parametrize("hz", [300.0, 437.0, 800.0, 1250.0, 3000.0])
def test_dominant_frequency_finds_the_tone(hz: float) -> None:
    pcm = np.concatenate(list(tone(hz, frames=10)))
    assert pcm.dtype == np.int16
    assert dominant_frequency(pcm) == pytest.approx(hz, abs=1.0)
    assert dominant_frequency(pcm[:FRAME_SAMPLES]) == pytest.approx(hz, abs=5.0)


def test_the_louder_of_two_tones_wins_and_silence_is_zero() -> None:
    loud = np.concatenate(list(tone(600, frames=10, level_dbfs=-6)))
    quiet = np.concatenate(list(tone(950, frames=10, level_dbfs=-26)))
    assert dominant_frequency(loud // 2 + quiet // 2) == pytest.approx(600, abs=1.0)
    assert dominant_frequency(np.zeros(960, np.int16)) == 0.0
    assert dominant_frequency(np.zeros(0, np.int16)) == 0.0


def test_levels_are_relative_to_a_full_scale_sine() -> None:
    pcm = np.concatenate(list(tone(1000, frames=5, level_dbfs=-10)))
    assert rms_dbfs(pcm) == pytest.approx(-10.0, abs=0.05)
    assert np.abs(pcm).max() == pytest.approx(32767 * 10 ** (-10 / 20), rel=0.01)
    assert rms_dbfs(np.concatenate(list(tone(1000, frames=5, level_dbfs=-30)))) == pytest.approx(
        -30.0, abs=0.05
    )
    assert rms_dbfs(np.zeros(960, np.int16)) == -math.inf


def test_phase_carries_on_across_frames_and_frequency_changes() -> None:
    generator = ToneGenerator(700)
    frames = [generator.next() for _ in range(5)]
    generator.set_frequency(900)
    frames += [generator.next() for _ in range(5)]
    joined = np.concatenate(frames).astype(np.int32)
    # No step between neighbouring samples is larger than the sine's own steepest step.
    steepest = generator.amplitude * 2 * math.pi * 900 / 48_000
    assert np.abs(np.diff(joined)).max() <= steepest + 2
    assert all(len(frame) == FRAME_SAMPLES for frame in frames)


def test_bad_frequencies_are_refused() -> None:
    with pytest.raises(ValueError, match="frequency"):
        ToneGenerator(0)
    with pytest.raises(ValueError, match="frequency"):
        ToneGenerator(30_000)
