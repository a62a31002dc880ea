"""The hardware self-test on the fakes: everything working, then each device broken in turn;
the report in GET /api/v1/health, the journal, on the screen, and as a blink code with no
screen; and a call is never held up by it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from appliance import selftest as selftest_module
from appliance.daemon import Daemon
from appliance.display.testcard import test_card as make_test_card
from appliance.events import KitWarning
from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput, FakeMicrophone
from hal.bluetooth.fake import FakeBluetooth
from hal.buttons.base import LedName, LedState
from hal.buttons.fake import FakeButtons
from hal.camera.fake import FakeCamera
from hal.display.fake import FakeDisplay
from tests.api.daemon import Api, api_client, running_daemon
from tests.kits import KitFactory

# A speakerphone: the fake microphone hears the fake speaker 30 ms later, as loud.
ROOM = {"hal": {"audio": {"fake_echo_db": 0.0}}}


@contextlib.asynccontextmanager
async def kit(tmp: Path, **overrides: Any) -> AsyncIterator[tuple[Daemon, Api]]:
    async with running_daemon(tmp, **(ROOM | overrides)) as daemon:
        assert daemon.boot_selftest is not None
        await daemon.boot_selftest
        async with api_client(daemon) as api:
            yield daemon, api


def by_device(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["device"]: (c["status"], c["detail"]) for c in report["checks"]}


def hw(daemon: Daemon) -> Any:
    assert daemon.hardware is not None
    return daemon.hardware


async def test_the_boot_selftest_passes_on_working_fakes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.selftest")
    async with kit(tmp_path) as (daemon, api):
        status, health = await api.call("GET", "/health", token="")
        assert status == 200
        report = health["selftest"]
        assert report["ok"] is True
        checks = by_device(report)
        assert {name: s for name, (s, _) in checks.items()} == {
            "camera fake0": "ok",
            "camera fake1": "ok",
            "audio": "ok",
            "buttons": "ok",
            "leds": "ok",
            "screen": "ok",
            "bluetooth": "ok",
        }
        assert "chirp heard at" in checks["audio"][1]
        buttons = cast(FakeButtons, hw(daemon).buttons)
        lit = {led for led, state in buttons.led_changes if state == LedState.ON}
        assert lit == set(LedName)  # each LED blinked
        assert all(state == LedState.OFF for state in map(buttons.led_state, LedName))
        assert daemon.compositor is not None
        assert daemon.compositor.scene.home.selftest == "Self-test passed"
        assert "self-test passed" in caplog.text


async def test_the_screen_shows_the_test_card_then_the_scene_again(tmp_path: Path) -> None:
    async with kit(tmp_path) as (daemon, _):
        display = cast(FakeDisplay, hw(daemon).display)
        assert daemon.compositor is not None
        card = make_test_card(*display.size)
        showing = asyncio.create_task(daemon.compositor.show_test_card(0.5))
        async with asyncio.timeout(5):
            while display.last_frame is None or not np.array_equal(display.last_frame, card):
                await asyncio.sleep(0.02)
        assert await showing is None
        async with asyncio.timeout(5):
            while np.array_equal(display.last_frame, card):
                await asyncio.sleep(0.02)


def cover_camera(daemon: Daemon) -> None:
    cast(FakeCamera, hw(daemon).cameras[0]).covered = True


def stall_camera(daemon: Daemon) -> None:
    cast(FakeCamera, hw(daemon).cameras[1]).stalled = True


def unplug_camera(daemon: Daemon) -> None:
    cast(FakeCamera, hw(daemon).cameras[0]).fail()


def pull_microphone(daemon: Daemon) -> None:
    cast(FakeMicrophone, hw(daemon).microphone).fail()


def break_speaker(daemon: Daemon) -> None:
    for route in (Route.SPEAKER, Route.EARPIECE):
        cast(FakeAudioOutput, hw(daemon).outputs[route]).fail()


def stick_button(daemon: Daemon) -> None:
    cast(FakeButtons, hw(daemon).buttons).down("end")


def break_led(daemon: Daemon) -> None:
    cast(FakeButtons, hw(daemon).buttons).broken_leds.add(LedName.MUTED)


def unplug_screen(daemon: Daemon) -> None:
    cast(FakeDisplay, hw(daemon).display).unplug()


def power_off_bluetooth(daemon: Daemon) -> None:
    cast(FakeBluetooth, hw(daemon).bluetooth).adapter_powered = False


@pytest.mark.parametrize(
    ("fault", "device", "detail"),
    [
        (cover_camera, "camera fake0", "black picture"),
        (stall_camera, "camera fake1", "no frames"),
        (unplug_camera, "camera fake0", "camera is gone"),
        (pull_microphone, "audio", "device is gone"),
        (break_speaker, "audio", "device is gone"),
        (stick_button, "buttons", "end read pressed"),
        (break_led, "leds", "LED muted"),
        (unplug_screen, "screen", "no screen connected"),
        (power_off_bluetooth, "bluetooth", "not powered"),
    ],
)
async def test_each_broken_device_fails_its_own_check_and_calls_still_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[Daemon], None],
    device: str,
    detail: str,
) -> None:
    monkeypatch.setattr(selftest_module, "CAMERA_TIMEOUT", 1.0)
    caplog.set_level(logging.INFO, logger="appliance.selftest")
    async with kit(tmp_path) as (daemon, api):
        fault(daemon)
        report = await api.ok("POST", "/selftest")
        checks = by_device(report)
        assert report["ok"] is False
        assert checks[device][0] == "failed"
        assert detail in checks[device][1]
        others = {name: s for name, (s, _) in checks.items() if name != device}
        assert set(others.values()) == {"ok"}, checks
        health = (await api.call("GET", "/health", token=""))[1]
        assert health["selftest"] == report
        assert f"self-test: {device} failed" in caplog.text
        assert daemon.compositor is not None
        home = daemon.compositor.scene.home
        assert home.selftest is not None and device in home.selftest
        assert home.selftest_ok is False
        if fault is not stick_button:  # the stuck END button would end the call
            view = await api.ok("PUT", "/session", {"session_id": "after-selftest"})
            assert view["state"] == "active"


@pytest.mark.parametrize(
    ("echo_db", "detail"),
    [(-70.0, "did not hear"), (30.0, "clips")],
)
async def test_a_speaker_the_microphone_cannot_hear_or_hears_far_too_loud_fails(
    tmp_path: Path, echo_db: float, detail: str
) -> None:
    async with kit(tmp_path, hal={"audio": {"fake_echo_db": echo_db}}) as (_, api):
        health = (await api.call("GET", "/health", token=""))[1]
        status, message = by_device(health["selftest"])["audio"]
        assert (status, detail in message) == ("failed", True), message


async def test_without_a_screen_a_failure_blinks_its_code_on_the_ringing_led(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selftest_module, "BLINK_SECONDS", 0.05)
    async with kit(
        tmp_path, hal={"audio": {"fake_echo_db": 0.0}, "display": {"backend": "disabled"}}
    ) as (daemon, api):
        buttons = cast(FakeButtons, hw(daemon).buttons)
        cast(FakeBluetooth, hw(daemon).bluetooth).adapter_powered = False
        buttons.led_changes.clear()
        report = await api.ok("POST", "/selftest")
        assert by_device(report)["screen"][0] == "skipped"
        code = selftest_module.BLINK_CODES["bluetooth"]
        async with asyncio.timeout(10):
            while True:
                ringing = [s for led, s in buttons.led_changes if led == LedName.RINGING]
                if ringing.count(LedState.ON) >= 1 + code * selftest_module.BLINK_REPEATS:
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        ringing = [s for led, s in buttons.led_changes if led == LedName.RINGING]
        # The LED check's own blink, then the code: five blinks, three times over.
        assert ringing.count(LedState.ON) == 1 + code * selftest_module.BLINK_REPEATS
        assert buttons.led_state(LedName.RINGING) == LedState.OFF


async def test_the_fake_microphone_without_a_room_skips_the_chirp(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        assert daemon.boot_selftest is not None
        await daemon.boot_selftest
        assert daemon.selftest is not None and daemon.selftest.last is not None
        audio = [c for c in daemon.selftest.last.checks if c.device == "audio"]
        assert audio[0].status == "skipped"
        assert "fake_echo_db" in audio[0].detail


async def test_a_call_takes_the_devices_from_a_running_selftest(tmp_path: Path) -> None:
    async with kit(tmp_path) as (daemon, api):
        assert daemon.calls is not None
        running = asyncio.create_task(api.call("POST", "/selftest"))
        async with asyncio.timeout(5):
            while daemon.selftest is None or not daemon.selftest.running:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the chirp is playing
        warnings: list[KitWarning] = []
        with daemon.calls.events.subscribe() as queue:
            view = await api.ok("PUT", "/session", {"session_id": "now"})
            assert view["state"] == "active"
            status, body = await running
            assert status == 409 and body["error"]["code"] == "selftest-busy"
            await asyncio.sleep(1.5)
            while not queue.empty():
                match queue.get_nowait().event:
                    case KitWarning() as warning:
                        warnings.append(warning)
        assert warnings == []
        microphone = cast(FakeMicrophone, hw(daemon).microphone)
        assert microphone.is_open  # the call's
        status, body = await api.call("POST", "/selftest")
        assert status == 409 and body["error"]["code"] == "selftest-busy"


async def test_an_incoming_call_rings_over_a_running_selftest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with kit(tmp_path) as (daemon, api):
        assert daemon.server is not None and daemon.calls is not None
        factory = KitFactory(daemon.server, tmp_path)
        try:
            caller = await factory("caller")
            running = asyncio.create_task(api.call("POST", "/selftest"))
            async with asyncio.timeout(5):
                while daemon.selftest is None or not daemon.selftest.running:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the chirp is playing on the speaker
            await caller.calls.initiate_call("room-a", "video")
            status, body = await running
            assert status == 409 and body["error"]["code"] == "selftest-busy"
            async with asyncio.timeout(5):
                while daemon.calls.ringer.rings == 0:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            assert daemon.calls.ringer.tone is not None  # still ringing
            assert "ringing (ring) failed" not in caplog.text
        finally:
            await factory.close()
