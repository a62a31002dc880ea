"""Audio level meters: who is speaking, for the screen's active-speaker highlight."""

from __future__ import annotations

from hal.audio.base import Pcm
from hal.audio.pcm import rms_dbfs

SILENCE_DBFS = -90.0
SPEECH_DBFS = -50.0  # without a voice detector, this loud counts as speaking
SPEAKING_PROBABILITY = 0.5


class LevelMeter:
    """A smoothed RMS level in dBFS: quick to rise, slow to fall, as a VU meter does; and,
    where a voice detector runs (the kit's own microphone), the smoothed probability that
    the frames hold speech, so that noise alone never lights the active speaker."""

    def __init__(self, attack: float = 0.5, release: float = 0.1) -> None:
        self._attack = attack
        self._release = release
        self.dbfs = SILENCE_DBFS
        self.voice: float | None = None  # None: no voice detector

    def add(self, pcm: Pcm | None, voice: float | None = None) -> float:
        # Digital silence reads -inf: held at the floor, or the smoothing turns it into NaN.
        now = SILENCE_DBFS if pcm is None or len(pcm) == 0 else max(SILENCE_DBFS, rms_dbfs(pcm))
        weight = self._attack if now > self.dbfs else self._release
        self.dbfs += (now - self.dbfs) * weight
        if pcm is None:
            voice = 0.0 if self.voice is not None else None
        if voice is not None:
            previous = self.voice if self.voice is not None else voice
            weight = self._attack if voice > previous else self._release
            self.voice = previous + (voice - previous) * weight
        return self.dbfs

    @property
    def speaking(self) -> bool:
        if self.voice is not None:
            return self.voice >= SPEAKING_PROBABILITY and self.dbfs > SILENCE_DBFS + 1
        return self.dbfs > SPEECH_DBFS
