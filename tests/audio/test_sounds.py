"""The ringtones shipped in the package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.audio import sounds
from hal.audio.base import SAMPLE_RATE
from hal.audio.pcm import dominant_frequency, rms_dbfs


def part(pcm: np.ndarray, start: float, end: float) -> np.ndarray:
    return pcm[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]


def test_the_ring_is_a_two_note_chime_then_silence() -> None:
    ring = sounds.load(sounds.RING)
    assert len(ring) == 3 * SAMPLE_RATE
    assert dominant_frequency(part(ring, 0.01, 0.2)) == pytest.approx(880, abs=5)
    assert dominant_frequency(part(ring, 0.26, 0.45)) == pytest.approx(1108.7, abs=5)
    assert rms_dbfs(part(ring, 0.0, 1.0)) > -15
    assert rms_dbfs(part(ring, 2.0, 3.0)) < -60
    assert np.max(np.abs(ring.astype(np.int32))) < 32767


def test_the_ring_back_tone_has_the_cept_cadence() -> None:
    ringback = sounds.load(sounds.RINGBACK)
    assert len(ringback) == 5 * SAMPLE_RATE
    assert dominant_frequency(part(ringback, 0.05, 0.95)) == pytest.approx(425, abs=2)
    assert rms_dbfs(part(ringback, 0.05, 0.95)) == pytest.approx(-10, abs=1)
    assert rms_dbfs(part(ringback, 1.05, 5.0)) < -60


def test_the_shipped_files_are_what_the_generator_makes(tmp_path: Path) -> None:
    for name, pcm in (
        (sounds.RING, sounds.synthesize_ring()),
        (sounds.RINGBACK, sounds.synthesize_ringback()),
    ):
        sounds.write_sound(tmp_path / name, pcm)
        regenerated, shipped = sounds.decode(tmp_path / name), sounds.load(name)
        assert len(regenerated) == len(shipped)
        assert np.corrcoef(regenerated.astype(float), shipped.astype(float))[0, 1] > 0.999
        assert sounds.shipped(name).stat().st_size < 16_000


def test_a_file_that_is_not_audio_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ring.ogg"
    bad.write_bytes(b"not an ogg file")
    with pytest.raises(sounds.SoundError, match="cannot read"):
        sounds.decode(bad)
