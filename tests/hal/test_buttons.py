"""Buttons and LEDs through gpiozero, on its mock pins."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterator

import pytest

from hal.buttons.base import ButtonName, Buttons, LedName, LedState, Press
from hal.buttons.fake import FakeButtons
from hal.config import ButtonsConfig, HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity
from tests.hal.helpers import settle

Event = tuple[ButtonName, Press, threading.Thread]


def started(buttons: FakeButtons) -> asyncio.Queue[Event]:
    events: asyncio.Queue[Event] = asyncio.Queue()
    buttons.start(lambda name, press: events.put_nowait((name, press, threading.current_thread())))
    return events


async def next_event(events: asyncio.Queue[Event]) -> tuple[ButtonName, Press]:
    name, press, thread = await asyncio.wait_for(events.get(), 2)
    assert thread is threading.current_thread()  # delivered on the loop's thread
    return name, press


@pytest.fixture
def buttons() -> Iterator[FakeButtons]:
    fake = FakeButtons(ButtonsConfig(long_press_s=0.2))
    yield fake
    fake.close()


async def test_mute_and_pause_fire_on_press(buttons: FakeButtons) -> None:
    assert isinstance(buttons, Buttons)
    events = started(buttons)
    buttons.down("mute")  # no release needed: latency matters
    assert await next_event(events) == (ButtonName.MUTE, Press.SHORT)
    buttons.up("mute")
    buttons.press(ButtonName.PAUSE)
    assert await next_event(events) == (ButtonName.PAUSE, Press.SHORT)
    await settle()
    assert events.empty()


async def test_end_is_short_on_release_and_long_when_held(buttons: FakeButtons) -> None:
    events = started(buttons)
    buttons.down("end")
    await asyncio.sleep(0.05)
    assert events.empty()  # nothing yet: it might become a long press
    buttons.up("end")
    assert await next_event(events) == (ButtonName.END, Press.SHORT)

    holding = asyncio.ensure_future(buttons.long_press("end"))
    # LONG arrives while still held (from gpiozero's hold thread), before the release.
    assert await next_event(events) == (ButtonName.END, Press.LONG)
    assert not holding.done()
    await holding
    await asyncio.sleep(0.05)
    await settle()
    assert events.empty()  # the release after a long press is not also a short press


async def test_leds_on_the_pins(buttons: FakeButtons) -> None:
    buttons.set_led(LedName.IN_CALL, LedState.ON)
    assert buttons.led_lit("in_call")
    assert buttons.led_state(LedName.IN_CALL) is LedState.ON
    assert await buttons.observed_led("in_call") is LedState.ON
    buttons.set_led(LedName.RINGING, LedState.BLINK)
    assert await buttons.observed_led(LedName.RINGING) is LedState.BLINK
    assert buttons.led_state(LedName.RINGING) is LedState.BLINK
    buttons.set_led(LedName.RINGING, LedState.OFF)
    assert await buttons.observed_led(LedName.RINGING) is LedState.OFF
    assert not buttons.led_lit(LedName.RINGING)
    assert await buttons.observed_led(LedName.MUTED) is LedState.OFF


async def test_an_led_without_a_pin_still_reports_what_was_asked() -> None:
    buttons = FakeButtons(ButtonsConfig(led_muted=None))
    buttons.set_led(LedName.MUTED, LedState.ON)
    assert buttons.led_state(LedName.MUTED) is LedState.ON
    assert buttons.led_pin(LedName.MUTED) is None
    assert not buttons.led_lit(LedName.MUTED)
    buttons.close()


async def test_kits_in_one_process_have_their_own_pins() -> None:
    first, second = FakeButtons(ButtonsConfig()), FakeButtons(ButtonsConfig())
    first_events, second_events = started(first), started(second)
    first.press("mute")
    assert await next_event(first_events) == (ButtonName.MUTE, Press.SHORT)
    await settle()
    assert second_events.empty()
    first.set_led(LedName.MUTED, LedState.ON)
    assert not second.led_lit(LedName.MUTED)
    first.close()
    second.close()


async def test_bounce_time_is_passed_to_the_pins() -> None:
    buttons = FakeButtons(ButtonsConfig(bounce_ms=30))
    assert buttons.button_pin("mute").bounce == pytest.approx(0.03)
    buttons.close()
    no_bounce = FakeButtons(ButtonsConfig(bounce_ms=0))
    assert no_bounce.button_pin("end").bounce is None
    no_bounce.close()


async def test_close_stops_presses_and_is_safe_twice() -> None:
    buttons = FakeButtons(ButtonsConfig())
    events = started(buttons)
    buttons.set_led(LedName.RINGING, LedState.BLINK)
    buttons.close()
    buttons.close()
    await settle()
    assert events.empty()
    with pytest.raises(HardwareError):
        buttons.start(lambda name, press: None)


def test_a_pin_used_twice_is_a_hardware_error() -> None:
    with pytest.raises(HardwareError, match="buttons"):
        FakeButtons(ButtonsConfig(mute=17, pause=17))


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio is installed")
def test_real_buttons_without_gpio_are_a_clear_error() -> None:
    from hal.buttons import real

    with pytest.raises(HardwareError, match="buttons"):
        real.create(HalConfig(), KitIdentity("k", "K"))


def test_pin_history_stays_bounded() -> None:
    buttons = FakeButtons(ButtonsConfig())
    pin = buttons.button_pin("mute")
    before = pin.changes
    for _ in range(pin.HISTORY):
        buttons.press("mute")
    assert pin.changes - before == 2 * pin.HISTORY
    assert len(pin.states) == pin.HISTORY
    buttons.close()
