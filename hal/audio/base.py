"""Microphone and per-route audio outputs.

All PCM in callbox is signed 16-bit, mono, 48 kHz, in 20 ms periods (960 samples), as numpy
int16 arrays. Routes are named as the call API names audio modes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from hal.errors import HardwareError

SAMPLE_RATE = 48_000
CHANNELS = 1
FRAME_SAMPLES = 960  # 20 ms

Pcm = npt.NDArray[np.int16]


class Route(StrEnum):
    SPEAKER = "SPEAKER"
    EARPIECE = "EARPIECE"
    HEADPHONES = "HEADPHONES"
    BLUETOOTH = "BLUETOOTH"


class AudioError(HardwareError):
    pass


@runtime_checkable
class Microphone(Protocol):
    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def read(self) -> Pcm:
        """The next 20 ms of capture (FRAME_SAMPLES int16), paced by the device."""

    async def close(self) -> None: ...

    @property
    def xruns(self) -> int:
        """Overruns recovered so far (the reader fell behind the device), over every open."""


@runtime_checkable
class AudioOutput(Protocol):
    @property
    def route(self) -> Route: ...

    @property
    def present(self) -> bool:
        """Whether something is there to play on (headphones plugged, headset connected)."""

    def on_presence_changed(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(present)`` on the event loop when presence changes; returns an
        unsubscribe function."""

    async def open(self) -> None: ...

    async def write(self, pcm: Pcm) -> None:
        """Queue PCM for playback; returns once it is buffered (never blocks the loop)."""

    async def close(self) -> None: ...

    @property
    def xruns(self) -> int:
        """Underruns recovered so far (the device ran dry), over every open."""


@dataclass
class AudioDevices:
    """What an audio backend's ``create`` returns: the capture device and one output per
    route the kit has."""

    microphone: Microphone | None
    outputs: dict[Route, AudioOutput] = field(default_factory=dict)
    # Background watchers (a headphone jack) that live as long as the hardware: stopped
    # when it closes, not when a route closes after a call.
    watchers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
