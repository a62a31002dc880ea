"""Audio level meters: who is speaking, for the screen's active-speaker highlight."""

from __future__ import annotations

from hal.audio.base import Pcm
from hal.audio.pcm import rms_dbfs

SILENCE_DBFS = -90.0


class LevelMeter:
    """A smoothed RMS level in dBFS: quick to rise, slow to fall, as a VU meter does."""

    def __init__(self, attack: float = 0.5, release: float = 0.1) -> None:
        self._attack = attack
        self._release = release
        self.dbfs = SILENCE_DBFS

    def add(self, pcm: Pcm | None) -> float:
        now = SILENCE_DBFS if pcm is None or len(pcm) == 0 else rms_dbfs(pcm)
        weight = self._attack if now > self.dbfs else self._release
        self.dbfs += (now - self.dbfs) * weight
        return self.dbfs
