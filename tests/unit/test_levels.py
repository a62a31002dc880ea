"""The level meter stays a number through digital silence (a silent guest's level is
sent as JSON, where NaN and -Infinity are not allowed)."""

import json
import math

import numpy as np

from appliance.media.levels import SILENCE_DBFS, LevelMeter
from hal.audio.pcm import tone


def test_digital_silence_then_a_tone_reads_finite_levels() -> None:
    meter = LevelMeter()
    for _ in range(20):
        meter.add(np.zeros(960, np.int16))
    assert meter.dbfs == SILENCE_DBFS
    for pcm in tone(440.0, level_dbfs=-20.0, frames=20):
        meter.add(pcm)
    assert math.isfinite(meter.dbfs)
    assert -21.0 < meter.dbfs < -19.0
    json.dumps({"audio_level_dbfs": meter.dbfs}, allow_nan=False)
