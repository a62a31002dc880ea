"""The three front-panel buttons (mute, pause video, end call) and the status LEDs."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable


class ButtonName(StrEnum):
    MUTE = "mute"
    PAUSE = "pause"
    END = "end"


class Press(StrEnum):
    SHORT = "short"
    LONG = "long"


class LedName(StrEnum):
    MUTED = "muted"
    IN_CALL = "in_call"
    RINGING = "ringing"


class LedState(StrEnum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"


@runtime_checkable
class Buttons(Protocol):
    def start(self, on_press: Callable[[ButtonName, Press], None]) -> None:
        """Begin watching the pins; ``on_press`` runs on the event loop."""

    def set_led(self, led: LedName, state: LedState) -> None: ...

    def led_state(self, led: LedName) -> LedState: ...

    def pressed(self) -> dict[ButtonName, bool]:
        """Each button's line as it reads now (True: held down). A quick read of the
        pins; the self-test calls it on a worker thread."""

    def leds(self) -> list[LedName]:
        """The LEDs this kit has wired (a pin configured for them)."""

    def close(self) -> None: ...
