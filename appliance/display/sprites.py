"""Descriptions of the pictures drawn over the call (text, labels, avatars, buttons...).

A description plus a size is all it takes to render one, so rendered pictures are cached
by (description, size) and rendered once, not per frame (see ``render``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.calls.settings import AvatarMode
from appliance.display.geometry import Colour
from appliance.display.scene import Control
from appliance.display.theme import WHITE


@dataclass(frozen=True)
class Text:
    text: str
    size: int  # font size in pixels
    colour: Colour = WHITE
    align: Literal["left", "center"] = "center"
    pill: Colour | None = None  # a rounded, slightly transparent background
    dot: Colour | None = None  # a status dot before the text


@dataclass(frozen=True)
class Label:
    """A tile's name label with its muted and video-off indicators."""

    name: str
    muted: bool = False
    video_paused: bool = False


@dataclass(frozen=True)
class Avatar:
    uid: str
    name: str
    shape: AvatarMode
    image: str | None = None  # URL of a loaded image; None: initials


@dataclass(frozen=True)
class Button:
    control: Control
    caption: str
    active: bool = False  # muted, video off, recording
    enabled: bool = True  # False: shown dimmed (not possible in this call)
    detail: str = ""  # e.g. the audio route


@dataclass(frozen=True)
class RecordingBadge:
    pass


@dataclass(frozen=True)
class KeyHint:
    """Which physical button does what (ringing screens)."""

    key: str
    action: str
    colour: Colour


@dataclass(frozen=True)
class Cursor:
    pass


SpriteSpec = Text | Label | Avatar | Button | RecordingBadge | KeyHint | Cursor
