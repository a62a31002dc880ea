#!/usr/bin/python3
"""Tone bursts for the virtual kit's microphone, run in the guest: 48 kHz mono S16_LE on
stdout, forever (pipe it into aplay). A steady sine is what a noise suppressor learns as
noise and takes away; bursts with pauses between them pass, as speech does. Arguments:
frequency in Hz, level in dBFS."""

import sys

import numpy as np

RATE = 48000
ON_S, OFF_S = 0.3, 0.2

hz, dbfs = float(sys.argv[1]), float(sys.argv[2])
t = np.arange(round(ON_S * RATE)) / RATE
burst = np.sin(2 * np.pi * hz * t) * 32767 * 10 ** (dbfs / 20)
ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fades: no clicks
period = np.concatenate([burst * ramp, np.zeros(round(OFF_S * RATE))]).astype("<i2").tobytes()
out = sys.stdout.buffer
while True:
    out.write(period)
