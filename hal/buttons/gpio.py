"""Front-panel buttons and LEDs on GPIO through gpiozero, for any pin factory.

The pin factory is always passed per device: gpiozero's global ``Device.pin_factory`` is
process-wide, and several kits (each with its own mock pins) may run in one process.
gpiozero calls back on its own threads; presses are handed to the loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button

from hal.buttons.base import ButtonName, LedName, LedState, Press
from hal.config import ButtonsConfig
from hal.errors import HardwareError

OnPress = Callable[[ButtonName, Press], None]


class GpioButtons:
    """Buttons wired between their pin and ground (internal pull-ups), LEDs driven high.

    Mute and pause report ``SHORT`` as soon as they go down, for the quickest response.
    End reports ``LONG`` once held for ``long_press_s``, otherwise ``SHORT`` when released,
    so a long press never also ends as a short one."""

    def __init__(
        self, config: ButtonsConfig, pin_factory: Any, *, blink_period_s: float = 1.0
    ) -> None:
        self._config = config
        self._blink_half_period = blink_period_s / 2
        self._on_press: OnPress | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._end_held = False
        self._end_lock = threading.Lock()
        self._closed = False
        self._led_states: dict[LedName, LedState] = {led: LedState.OFF for led in LedName}
        self._buttons: dict[ButtonName, Button] = {}
        self._leds: dict[LedName, LED] = {}
        bounce = config.bounce_ms / 1000 if config.bounce_ms else None
        pins: dict[ButtonName, int] = {
            ButtonName.MUTE: config.mute,
            ButtonName.PAUSE: config.pause,
            ButtonName.END: config.end,
        }
        led_pins = {
            LedName.MUTED: config.led_muted,
            LedName.IN_CALL: config.led_in_call,
            LedName.RINGING: config.led_ringing,
        }
        try:
            for name, pin in pins.items():
                self._buttons[name] = Button(
                    pin,
                    pull_up=True,
                    bounce_time=bounce,
                    hold_time=config.long_press_s,
                    pin_factory=pin_factory,
                )
            for led, led_pin in led_pins.items():
                if led_pin is not None:
                    self._leds[led] = LED(led_pin, pin_factory=pin_factory)
        except Exception as exc:  # gpiozero raises many kinds: pin in use, no such pin, ...
            self.close()
            raise HardwareError("buttons", f"cannot claim GPIO pins: {exc}") from exc

    @property
    def config(self) -> ButtonsConfig:
        return self._config

    def start(self, on_press: OnPress) -> None:
        if self._closed:
            raise HardwareError("buttons", "closed")
        self._loop = asyncio.get_running_loop()
        self._on_press = on_press
        self._buttons[ButtonName.MUTE].when_pressed = self._mute_pressed
        self._buttons[ButtonName.PAUSE].when_pressed = self._pause_pressed
        end = self._buttons[ButtonName.END]
        end.when_pressed = self._end_pressed
        end.when_held = self._end_held_down
        end.when_released = self._end_released

    # gpiozero threads from here on

    def _mute_pressed(self) -> None:
        self._deliver(ButtonName.MUTE, Press.SHORT)

    def _pause_pressed(self) -> None:
        self._deliver(ButtonName.PAUSE, Press.SHORT)

    def _end_pressed(self) -> None:
        with self._end_lock:
            self._end_held = False

    def _end_held_down(self) -> None:
        with self._end_lock:
            self._end_held = True
        self._deliver(ButtonName.END, Press.LONG)

    def _end_released(self) -> None:
        with self._end_lock:
            was_held, self._end_held = self._end_held, False
        if not was_held:
            self._deliver(ButtonName.END, Press.SHORT)

    def _deliver(self, button: ButtonName, press: Press) -> None:
        loop, on_press = self._loop, self._on_press
        if self._closed or loop is None or on_press is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed since the check
            loop.call_soon_threadsafe(on_press, button, press)

    # back on the loop

    def set_led(self, led: LedName, state: LedState) -> None:
        if self._led_states[led] is state:
            return  # a repeated BLINK must not restart the blink's rhythm
        self._led_states[led] = state
        device = self._leds.get(led)
        if device is None or self._closed:
            return
        if state is LedState.ON:
            device.on()
        elif state is LedState.OFF:
            device.off()
        else:
            half = self._blink_half_period
            device.blink(on_time=half, off_time=half, background=True)

    def led_state(self, led: LedName) -> LedState:
        return self._led_states[led]

    def pressed(self) -> dict[ButtonName, bool]:
        if self._closed:
            raise HardwareError("buttons", "closed")
        try:
            return {name: bool(button.is_pressed) for name, button in self._buttons.items()}
        except Exception as exc:  # gpiozero's errors: the chip went away
            raise HardwareError("buttons", f"cannot read the GPIO lines: {exc}") from exc

    def leds(self) -> list[LedName]:
        return list(self._leds)

    def close(self) -> None:
        self._closed = True
        for device in (*self._buttons.values(), *self._leds.values()):
            device.close()
        self._buttons.clear()
        self._leds.clear()
