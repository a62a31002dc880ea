"""What Chromium's fake camera and microphone play: files the kit can recognise.

The camera file is the kits' own numbered test pattern, so the kit reads a frame counter
out of the video it decodes from the browser; the microphone file is one steady tone, so
the kit's speaker output has one clear FFT peak.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from hal.audio.pcm import tone
from hal.camera.pattern import TestPattern, parse_colour

BROWSER_TONE_HZ = 880.0  # far from every kit's tone (300-1250 Hz in 50 Hz steps: 850, 900)
BROWSER_COLOUR = "#2080c0"


def write_pattern_y4m(
    path: Path, *, width: int = 320, height: int = 240, fps: int = 15, frames: int = 300
) -> None:
    """``frames`` numbered pattern frames as YUV4MPEG2 (Chromium loops the file)."""
    pattern = TestPattern(
        width, height, colour=parse_colour(BROWSER_COLOUR), label="Browser", camera_index=0
    )
    y = np.empty((height, width), np.uint8)
    u = np.empty((height // 2, width // 2), np.uint8)
    v = np.empty((height // 2, width // 2), np.uint8)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for counter in range(frames):
            pattern.draw(counter, y, u, v)
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            out.write(u.tobytes())
            out.write(v.tobytes())


def write_tone_wav(path: Path, *, hz: float = BROWSER_TONE_HZ, seconds: float = 4.0) -> None:
    rate = 48_000
    frames = int(seconds * rate / 960)
    pcm = np.concatenate(list(tone(hz, level_dbfs=-10, frames=frames)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())
