"""The mixer's soft limiter: loud participants summed never clip, quiet ones pass as they
are."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.limiter import CEILING_DBFS, SoftLimiter
from appliance.media.levels import LevelMeter
from appliance.media.remote import AudioMixer, JitterBuffer
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE
from hal.audio.pcm import FULL_SCALE, dominant_frequency, tone

CEILING = FULL_SCALE * 10 ** (CEILING_DBFS / 20)
TONES = (400.0, 510.0, 650.0)


def spectrum_share(pcm: np.ndarray, frequencies: tuple[float, ...]) -> float:
    """The share of the energy within 5 Hz of ``frequencies`` (1 s of audio, Hann)."""
    power = np.abs(np.fft.rfft(pcm[:SAMPLE_RATE] * np.hanning(SAMPLE_RATE))) ** 2
    near = np.zeros(len(power), bool)
    for hz in frequencies:
        near[int(hz) - 5 : int(hz) + 6] = True
    return float(power[near].sum() / power.sum())


def three_full_scale_tones(frames: int) -> list[np.ndarray]:
    mixes = [np.zeros(FRAME_SAMPLES, np.int32) for _ in range(frames)]
    for hz in TONES:
        for mix, pcm in zip(mixes, tone(hz, level_dbfs=0, frames=frames), strict=True):
            mix += pcm
    return mixes


def test_three_full_scale_participants_never_clip() -> None:
    limiter = SoftLimiter()
    out = np.concatenate([limiter.process(mix) for mix in three_full_scale_tones(100)])

    assert out.dtype == np.int16
    assert np.max(np.abs(out.astype(np.int32))) <= CEILING + 1
    assert limiter.reduction_db < -9  # the sum peaks near 3x full scale
    # Every participant is still there, at the same level, with little distortion: the
    # gain holds through the beats instead of wobbling with them.
    power = np.abs(np.fft.rfft(out[SAMPLE_RATE:] * np.hanning(len(out) - SAMPLE_RATE))) ** 2
    bins = len(out) - SAMPLE_RATE
    levels = [10 * np.log10(power[round(hz * bins / SAMPLE_RATE)]) for hz in TONES]
    assert max(levels) - min(levels) < 0.5
    assert spectrum_share(out[SAMPLE_RATE:], TONES) > 0.999


def test_a_quiet_participant_passes_bit_exact() -> None:
    limiter = SoftLimiter()
    pcm = np.concatenate(list(tone(700, level_dbfs=-10, frames=20)))
    out = np.concatenate(
        [
            limiter.process(pcm[i : i + FRAME_SAMPLES].astype(np.int32))
            for i in range(0, len(pcm), FRAME_SAMPLES)
        ]
    )
    assert np.array_equal(out, pcm)
    assert limiter.reduction_db == 0.0


def test_the_gain_recovers_after_a_loud_burst() -> None:
    limiter = SoftLimiter()
    for mix in three_full_scale_tones(10):
        limiter.process(mix)
    quiet = list(tone(700, level_dbfs=-20, frames=50))
    outs = [limiter.process(pcm.astype(np.int32)) for pcm in quiet]
    assert not np.array_equal(outs[0], quiet[0])  # still limiting just after the burst
    assert np.array_equal(outs[-1], quiet[-1])  # back to unity within a second
    assert dominant_frequency(outs[0]) == pytest.approx(700, abs=1)


def test_the_mixer_limits_its_sum() -> None:
    mixer = AudioMixer(on_output_failed=lambda output, err: None)
    sources = {}
    for uid, hz in zip("abc", TONES, strict=True):
        sources[uid] = (tone(hz, level_dbfs=0), mixer._sources.setdefault(uid, JitterBuffer()))
        mixer.levels[uid] = LevelMeter()
    out = []
    for _ in range(60):
        for frames, buffer in sources.values():
            buffer.put(next(frames))
        out.append(mixer.mix_once())
    pcm = np.concatenate(out[5:])
    assert np.max(np.abs(pcm.astype(np.int32))) <= CEILING + 1
    assert spectrum_share(pcm, TONES) > 0.999


def test_blocks_limited_one_by_one_are_the_mix_limited_at_once() -> None:
    """Quiet blocks take a shortcut; the gain it carries into the next loud block, and the
    recovery after one, are the full curve's: 20 ms blocks give the samples one call does."""
    rng = np.random.default_rng(7)
    levels = [0.05, 0.05, 3.0, 0.2, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 1.5, 0.05, 0.05]
    mix = np.concatenate(
        [(rng.standard_normal(FRAME_SAMPLES) * level * FULL_SCALE) for level in levels]
    ).astype(np.int32)
    whole = SoftLimiter().process(mix)
    limiter = SoftLimiter()
    blocks = [limiter.process(block) for block in np.split(mix, len(levels))]
    assert np.array_equal(np.concatenate(blocks), whole)
    quiet = mix[:FRAME_SAMPLES]
    assert np.array_equal(SoftLimiter().process(quiet), quiet)


def test_a_broken_maths_library_cannot_stick_the_gain(monkeypatch: pytest.MonkeyPatch) -> None:
    # QEMU 7.2's emulated FMA/AVX2 gave numpy's tanh(3) = -1058: the target gain went
    # negative, log10 raised on every later block and the speaker stayed silent.
    limiter = SoftLimiter()
    with monkeypatch.context() as patched:
        patched.setattr(np, "tanh", lambda x: np.full_like(x, -1058.0))
        out = limiter.process(np.full(FRAME_SAMPLES, 40000, dtype=np.int32))
    assert np.all(np.abs(out.astype(np.int32)) <= CEILING)
    # With the maths right again, the gain comes back to unity within a few hundred ms.
    for block in tone(440.0, level_dbfs=-20.0, frames=20):
        limiter.process(block.astype(np.int32))
    assert limiter.reduction_db > -0.5
