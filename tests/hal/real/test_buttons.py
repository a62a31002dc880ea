"""The front panel through the whole daemon: buttons pressed on gpiozero's mock pins (at the
pins config names), LEDs read back from their pins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from appliance.daemon import Daemon
from hal.buttons.base import ButtonName, LedName, LedState
from hal.buttons.fake import FakeButtons
from hal.camera.fake import FakeCamera
from tests.daemons import host_and_guest

PINS = {"mute": 5, "pause": 6, "end": 13, "led_muted": 19, "led_in_call": 26, "led_ringing": 21}


@pytest.fixture
async def daemons(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    panel = {
        "display": {"backend": "disabled"},
        "buttons": {**PINS, "bounce_ms": 40, "long_press_s": 0.4},
    }
    async with host_and_guest(tmp_path, hal=panel) as daemons:
        for daemon in daemons:  # its LED check blinks every LED once: let it finish
            assert daemon.boot_selftest is not None
            await daemon.boot_selftest
        yield daemons


def panel(daemon: Daemon) -> FakeButtons:
    assert daemon.hardware is not None
    return cast(FakeButtons, daemon.hardware.buttons)


def state(daemon: Daemon) -> str:
    assert daemon.calls is not None
    return daemon.calls.state.value


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def leds(daemon: Daemon) -> dict[LedName, LedState]:
    """What someone looking at the three LEDs sees (a blink shows as pin changes)."""
    lights = panel(daemon)
    seen = await asyncio.gather(*(lights.observed_led(led) for led in LedName))
    return dict(zip(LedName, seen, strict=True))


async def test_the_panel_through_a_call(daemons: tuple[Daemon, Daemon]) -> None:
    host, guest = daemons
    assert host.kit is not None
    # The configured pins are the ones in use, with the configured bounce time.
    for name in ButtonName:
        pin = panel(guest).button_pin(name)
        assert pin.info.name == f"GPIO{PINS[name.value]}"
        assert pin.bounce == pytest.approx(0.04)
    for led in LedName:
        led_pin = panel(guest).led_pin(led)
        assert led_pin is not None
        assert led_pin.info.name == f"GPIO{PINS[f'led_{led.value}']}"
    off = {led: LedState.OFF for led in LedName}
    assert await leds(guest) == off

    # A call rings: the ringing LED blinks; a long press on end rejects it.
    await host.kit.place_call("room-b")
    await until(lambda: state(guest) == "ringing")
    assert await leds(guest) == {**off, LedName.RINGING: LedState.BLINK}
    await panel(guest).long_press("end")
    await until(lambda: state(guest) == "idle" and state(host) == "idle")
    assert host.calls is not None
    log = await host.calls._api.calls(host.calls._auth_token)
    assert log[0].status == "rejected"
    assert await leds(guest) == off

    # Again, answered with the mute button: in call on both panels.
    await host.kit.place_call("room-b")
    await until(lambda: state(guest) == "ringing")
    panel(guest).press("mute")
    await until(lambda: state(guest) == "active" and state(host) == "active")
    assert await leds(guest) == {**off, LedName.IN_CALL: LedState.ON}
    assert await leds(host) == {**off, LedName.IN_CALL: LedState.ON}

    # Mute: the muted LED is on while muted.
    panel(guest).press("mute")
    await until(lambda: guest.calls is not None and guest.calls.snapshot()["local"]["audio_muted"])
    assert await leds(guest) == {**off, LedName.IN_CALL: LedState.ON, LedName.MUTED: LedState.ON}
    panel(guest).press("mute")
    await until(
        lambda: guest.calls is not None and not guest.calls.snapshot()["local"]["audio_muted"]
    )
    assert (await leds(guest))[LedName.MUTED] is LedState.OFF

    # Pause video: the camera is released, and back.
    assert guest.hardware is not None
    camera = cast(FakeCamera, guest.hardware.cameras[0])
    assert camera.is_open
    panel(guest).press("pause")
    await until(lambda: not camera.is_open)
    panel(guest).press("pause")
    await until(lambda: camera.is_open)

    # A long press on end confirms ending the call: both panels go dark.
    await panel(guest).long_press("end")
    await until(lambda: state(guest) == "idle" and state(host) == "idle")
    assert await leds(guest) == off
    assert await leds(host) == off
