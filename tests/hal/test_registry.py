"""Choosing real, fake or no hardware per device kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput, FakeMicrophone
from hal.bluetooth.fake import FakeBluetooth
from hal.buttons.fake import FakeButtons
from hal.camera.base import VideoFormat
from hal.camera.fake import FakeCamera
from hal.config import HalConfig
from hal.display.fake import FakeDisplay
from hal.errors import HardwareError
from hal.registry import KINDS, KitIdentity, build_hardware, running_on_pi
from tests.hal.helpers import settle

KIT = KitIdentity("room-a", "Room A")


def config(**sections: object) -> HalConfig:
    return HalConfig.model_validate(sections)


async def test_auto_off_a_pi_builds_every_fake() -> None:
    hardware = build_hardware(HalConfig(), KIT, is_pi=False)
    assert hardware.kinds == dict.fromkeys(KINDS, "fake")
    assert [type(camera) for camera in hardware.cameras] == [FakeCamera, FakeCamera]
    assert isinstance(hardware.microphone, FakeMicrophone)
    assert set(hardware.outputs) == set(Route)
    assert all(isinstance(output, FakeAudioOutput) for output in hardware.outputs.values())
    assert isinstance(hardware.bluetooth, FakeBluetooth)
    assert isinstance(hardware.buttons, FakeButtons)
    assert isinstance(hardware.display, FakeDisplay)
    await hardware.close()


async def test_bluetooth_route_follows_the_manager() -> None:
    hardware = build_hardware(HalConfig(), KIT, is_pi=False)
    bluetooth, route = hardware.bluetooth, hardware.outputs[Route.BLUETOOTH]
    assert isinstance(bluetooth, FakeBluetooth)
    seen: list[bool] = []
    route.on_presence_changed(seen.append)
    assert not route.present
    bluetooth.add_device("00:11:22:33:44:55", "Headset")
    bluetooth.device_connects("00:11:22:33:44:55")
    await settle()
    assert route.present
    bluetooth.device_leaves("00:11:22:33:44:55")
    await settle()
    assert not route.present
    assert seen == [True, False]
    await hardware.close()
    bluetooth.device_connects("00:11:22:33:44:55")  # no longer followed after close
    await settle()
    assert not route.present


async def test_disabled_kinds_give_nothing() -> None:
    hardware = build_hardware(
        config(
            camera={"backend": "disabled"},
            audio={"backend": "disabled"},
            buttons={"backend": "disabled"},
            display={"backend": "disabled"},
        ),
        KIT,
        is_pi=False,
    )
    assert hardware.cameras == []
    assert hardware.microphone is None
    assert hardware.outputs == {}
    assert hardware.buttons is None
    assert hardware.display is None
    assert isinstance(hardware.bluetooth, FakeBluetooth)
    assert hardware.kinds["camera"] == "disabled"
    assert hardware.kinds["bluetooth"] == "fake"
    await hardware.close()


async def test_without_bluetooth_there_is_no_bluetooth_route() -> None:
    hardware = build_hardware(config(bluetooth={"backend": "disabled"}), KIT, is_pi=False)
    assert hardware.bluetooth is None
    assert set(hardware.outputs) == {Route.SPEAKER, Route.EARPIECE, Route.HEADPHONES}
    await hardware.close()


@pytest.mark.parametrize("kind", ["camera", "audio", "bluetooth", "display", "buttons"])
def test_real_without_a_driver_is_a_start_up_error_naming_the_device(kind: str) -> None:
    with pytest.raises(HardwareError) as raised:
        build_hardware(config(**{kind: {"backend": "real"}}), KIT, is_pi=False)
    assert raised.value.device == kind
    assert kind in str(raised.value)


def test_auto_on_a_pi_wants_real_drivers() -> None:
    with pytest.raises(HardwareError) as raised:
        build_hardware(HalConfig(), KIT, is_pi=True)
    assert raised.value.device == "camera"  # the first kind, never silently faked


async def test_fake_everywhere_when_asked_even_on_a_pi() -> None:
    hardware = build_hardware(HalConfig(backend="fake"), KIT, is_pi=True)
    assert set(hardware.kinds.values()) == {"fake"}
    await hardware.close()


def test_failed_build_releases_what_it_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[FakeButtons] = []
    monkeypatch.setattr(FakeButtons, "close", lambda self: closed.append(self))
    with pytest.raises(HardwareError):
        build_hardware(config(display={"backend": "real"}), KIT, is_pi=False)
    assert len(closed) == 1


def test_pi_detection(tmp_path: Path) -> None:
    model = tmp_path / "model"
    assert not running_on_pi(model)
    model.write_text("Raspberry Pi 4 Model B Rev 1.5\0")
    assert running_on_pi(model)
    model.write_text("QEMU Virtual Machine\0")
    assert not running_on_pi(model)


async def test_close_releases_every_device() -> None:
    hardware = build_hardware(HalConfig(), KIT, is_pi=False)
    camera = hardware.cameras[0]
    await camera.open(VideoFormat(320, 240, 30))
    assert hardware.microphone is not None
    await hardware.microphone.open()
    speaker = hardware.outputs[Route.SPEAKER]
    await speaker.open()
    await speaker.write(np.zeros(960, np.int16))
    assert hardware.bluetooth is not None
    await hardware.bluetooth.start()
    assert hardware.display is not None
    await hardware.display.open()
    await hardware.close()
    await hardware.close()
    assert not camera.is_open
    assert not hardware.microphone.is_open
    assert isinstance(speaker, FakeAudioOutput)
    assert not speaker.is_open
    assert isinstance(hardware.bluetooth, FakeBluetooth)
    assert not hardware.bluetooth.started
    assert isinstance(hardware.display, FakeDisplay)
    assert not hardware.display.is_open


async def test_two_kits_in_one_process_are_independent() -> None:
    first = build_hardware(HalConfig(), KIT, is_pi=False)
    second = build_hardware(HalConfig(), KitIdentity("room-b", "Room B"), is_pi=False)
    assert isinstance(first.microphone, FakeMicrophone)
    assert isinstance(second.microphone, FakeMicrophone)
    assert first.microphone.tone_hz != second.microphone.tone_hz
    assert isinstance(first.cameras[0], FakeCamera)
    assert isinstance(second.cameras[0], FakeCamera)
    assert first.cameras[0].colour != second.cameras[0].colour
    await first.close()
    await second.close()
