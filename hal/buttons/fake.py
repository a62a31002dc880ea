"""Buttons on gpiozero's mock pins: the real GPIO code path, driven by tests."""

from __future__ import annotations

import asyncio
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from hal.buttons.base import ButtonName, LedName, LedState
from hal.buttons.gpio import GpioButtons
from hal.config import ButtonsConfig, HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity

FAKE_BLINK_PERIOD_S = 0.2  # quicker than real LEDs, so tests see a blink in a fraction of a second


class FakePin(MockPin):  # type: ignore[misc]
    """A mock pin that counts its changes and keeps only the recent ones: MockPin's history
    grows by one entry per change, and a blinking LED in a long-running fake changes forever."""

    HISTORY = 1000

    def __init__(self, factory: Any, info: Any) -> None:
        self.changes = 0
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            self.changes += 1
            if len(self.states) > self.HISTORY:
                del self.states[: -self.HISTORY]
        return changed


class FakeButtons(GpioButtons):
    """``GpioButtons`` on a private ``MockFactory``. ``press(name)`` is a short press,
    ``await long_press(name)`` holds past ``long_press_s``; ``down``/``up`` drive a pin by
    hand (a button left ``down`` is a stuck one). ``observed_led`` reads an LED back from its
    mock pin, blinking included. Scripting: ``broken_leds.add(led)`` makes setting that LED
    raise HardwareError (its pin gone)."""

    def __init__(
        self, config: ButtonsConfig, *, blink_period_s: float = FAKE_BLINK_PERIOD_S
    ) -> None:
        # pin_class given explicitly: MockFactory otherwise reads it from the environment.
        self.pin_factory = MockFactory(pin_class=FakePin)
        super().__init__(config, self.pin_factory, blink_period_s=blink_period_s)
        self._blink_period = blink_period_s
        self.broken_leds: set[LedName] = set()
        self.led_changes: list[tuple[LedName, LedState]] = []  # every set_led, in order

    def set_led(self, led: LedName, state: LedState) -> None:
        if led in self.broken_leds:
            raise HardwareError("buttons", f"LED {led.value}: its GPIO line is gone")
        self.led_changes.append((led, state))
        super().set_led(led, state)

    def _pin(self, number: int) -> FakePin:
        pin = self.pin_factory.pin(number)  # the very pin object the device uses
        assert isinstance(pin, FakePin)
        return pin

    def button_pin(self, name: ButtonName | str) -> FakePin:
        number: int = getattr(self.config, ButtonName(name).value)
        return self._pin(number)

    def led_pin(self, led: LedName | str) -> FakePin | None:
        number: int | None = getattr(self.config, f"led_{LedName(led).value}")
        return None if number is None else self._pin(number)

    def down(self, name: ButtonName | str) -> None:
        self.button_pin(name).drive_low()  # buttons pull the pin to ground

    def up(self, name: ButtonName | str) -> None:
        self.button_pin(name).drive_high()

    def press(self, name: ButtonName | str) -> None:
        self.down(name)
        self.up(name)

    async def long_press(self, name: ButtonName | str) -> None:
        self.down(name)
        try:
            await asyncio.sleep(self.config.long_press_s + 0.1)
        finally:
            self.up(name)

    def led_lit(self, led: LedName | str) -> bool:
        """Whether the LED's pin is high right now."""
        pin = self.led_pin(led)
        return pin is not None and bool(pin.state)

    async def observed_led(self, led: LedName | str) -> LedState:
        """What someone watching the LED for a little over one blink period would say."""
        pin = self.led_pin(led)
        if pin is None:
            return LedState.OFF
        changes_before = pin.changes
        await asyncio.sleep(self._blink_period * 1.25)
        if pin.changes - changes_before >= 2:
            return LedState.BLINK
        return LedState.ON if pin.state else LedState.OFF


def create(config: HalConfig, kit: KitIdentity) -> FakeButtons:
    return FakeButtons(config.buttons)
