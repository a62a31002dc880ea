"""Colours and proportions of the screen. The colours are kept well away from the fake
cameras' saturated kit colours, so a test can find a camera's colour on screen."""

from __future__ import annotations

from appliance.display.geometry import Colour

CALL_BG: Colour = (18, 18, 20)
TILE_BG: Colour = (48, 50, 56)
BAR_BG: Colour = (30, 30, 34)
HOME_BG: Colour = (22, 28, 40)
RINGING_BG: Colour = (24, 34, 30)
PIP_BORDER: Colour = (200, 204, 212)
SPEAKER: Colour = (90, 170, 250)  # active speaker outline
FLOATING_BORDER: Colour = (220, 222, 228)
WHITE: Colour = (240, 240, 240)
SOFT_TEXT: Colour = (170, 176, 186)
RED: Colour = (196, 72, 72)  # end, muted, recording
GREEN: Colour = (80, 170, 110)  # ready, answer
AMBER: Colour = (200, 160, 80)  # not ready, warnings
BUTTON: Colour = (70, 72, 80)
BUTTON_ACTIVE: Colour = (230, 230, 230)
LABEL_BG: Colour = (20, 20, 24)
BANNER_BG: Colour = (60, 48, 24)

# Avatar backgrounds: muted hues (saturation 0.35, value 0.5).
AVATAR_SATURATION = 0.35
AVATAR_VALUE = 0.5
