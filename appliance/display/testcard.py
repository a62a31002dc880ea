"""The self-test's test card: colour bars over a grey ramp, framed in white, so a person
looking at the screen sees colours, levels and the picture's edges at a glance."""

from __future__ import annotations

import numpy as np

from hal.display.base import Rgb

# 75 % colour bars: white, yellow, cyan, green, magenta, red, blue.
BARS = (
    (191, 191, 191),
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
)


def test_card(width: int, height: int) -> Rgb:
    card = np.zeros((height, width, 3), dtype=np.uint8)
    bars_end = height * 2 // 3
    for index, colour in enumerate(BARS):
        left, right = width * index // len(BARS), width * (index + 1) // len(BARS)
        card[:bars_end, left:right] = colour
    ramp = np.linspace(0, 255, width).astype(np.uint8)
    card[bars_end:] = ramp[np.newaxis, :, np.newaxis]
    border = max(2, min(width, height) // 100)
    card[:border], card[-border:] = 255, 255
    card[:, :border], card[:, -border:] = 255, 255
    return card
