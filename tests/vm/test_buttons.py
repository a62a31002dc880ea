"""The front-panel buttons and LEDs on gpio-sim, through gpiozero's lgpio pin factory (the
kernel's GPIO character device, as on a Pi): the mute button mutes the call and lights the
mute LED; the end button ends the call."""

from __future__ import annotations

from tests.vm.machine import VirtualKit
from tests.vm.session import end, gpio_value, press, session, start_alone, wait_until

MUTE, END = 17, 22  # the default BCM pins (hal.buttons)
LED_MUTED, LED_IN_CALL = 23, 24


def test_mute_button_mutes_the_call_and_lights_the_led_and_end_ends_it(vm: VirtualKit) -> None:
    end(vm)
    assert gpio_value(vm, LED_IN_CALL) == 0
    start_alone(vm, "vm-buttons")
    wait_until("the in-call LED", lambda: gpio_value(vm, LED_IN_CALL) == 1)
    assert session(vm)["local"]["audio_muted"] is False
    assert gpio_value(vm, LED_MUTED) == 0

    press(vm, MUTE)
    wait_until("muted", lambda: session(vm)["local"]["audio_muted"] is True)
    wait_until("the mute LED on", lambda: gpio_value(vm, LED_MUTED) == 1)

    press(vm, MUTE)
    wait_until("unmuted", lambda: session(vm)["local"]["audio_muted"] is False)
    wait_until("the mute LED off", lambda: gpio_value(vm, LED_MUTED) == 0)

    press(vm, END)
    wait_until("the call to end", lambda: session(vm)["state"] == "idle")
    wait_until("the in-call LED off", lambda: gpio_value(vm, LED_IN_CALL) == 0)
