"""The BlueZ driver against python-dbusmock's bluez5 template on a private system bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput
from hal.audio.presence import BluetoothAudioPresence
from hal.bluetooth.base import Bluetooth, BluetoothDevice, BluetoothError
from hal.bluetooth.real import BluezBluetooth, create
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity
from hal.registry import build_hardware
from tests.hal.real.bluez import BluezMock, private_system_bus
from tests.kits import KitFactory

KIT = KitIdentity("room-a", "Room A")
HEADSET = "00:1B:66:AA:BB:01"
PHONE = "4C:32:75:00:11:22"


@pytest.fixture
async def manager(bluez: BluezMock) -> AsyncIterator[BluezBluetooth]:
    bluetooth = BluezBluetooth(bluez.address)
    yield bluetooth
    await bluetooth.stop()


class Changes:
    def __init__(self, bluetooth: Bluetooth) -> None:
        self.seen: list[BluetoothDevice] = []
        bluetooth.on_change(self.seen.append)

    async def until(self, address: str, **state: bool) -> BluetoothDevice:
        async with asyncio.timeout(10):
            while True:
                for device in reversed(self.seen):
                    if device.address == address:
                        if all(getattr(device, k) == v for k, v in state.items()):
                            return device
                        break
                await asyncio.sleep(0.01)


async def test_start_powers_the_adapter_and_reports_every_known_device(
    bluez: BluezMock, manager: BluezBluetooth
) -> None:
    bluez.add_device(HEADSET, "Jabra Evolve 65")
    bluez.add_device(PHONE, "Pixel 7", headset=False)
    bluez.power_off()
    changes = Changes(manager)
    await manager.start()
    assert bluez.adapter_powered()
    assert manager.adapter_path == "/org/bluez/hci0"
    assert isinstance(manager, Bluetooth)
    headset = await changes.until(HEADSET)
    phone = await changes.until(PHONE)
    assert headset == BluetoothDevice(HEADSET, "Jabra Evolve 65", True, False, True)
    assert phone == BluetoothDevice(PHONE, "Pixel 7", True, False, False)  # no audio sink
    assert sorted(d.address for d in await manager.devices()) == sorted([HEADSET, PHONE])


async def test_properties_changed_follows_a_headset_that_comes_and_goes(
    bluez: BluezMock, manager: BluezBluetooth
) -> None:
    await manager.start()
    changes = Changes(manager)
    bluez.add_device(HEADSET, "Jabra Evolve 65")  # paired while we watch
    await changes.until(HEADSET, paired=True, audio=True)
    bluez.device_connects(HEADSET)  # switched on: it connects by itself
    await changes.until(HEADSET, connected=True)
    bluez.device_leaves(HEADSET)
    await changes.until(HEADSET, connected=False)
    assert [d.connected for d in changes.seen if d.address == HEADSET][-2:] == [True, False]


async def test_connect_and_disconnect_go_through_bluez(
    bluez: BluezMock, manager: BluezBluetooth
) -> None:
    bluez.add_device(HEADSET, "Jabra Evolve 65")
    await manager.start()
    changes = Changes(manager)
    await manager.connect(HEADSET.lower())
    await changes.until(HEADSET, connected=True)
    with pytest.raises(BluetoothError, match="Already Connected"):
        await manager.connect(HEADSET)
    await manager.disconnect(HEADSET)
    await changes.until(HEADSET, connected=False)
    assert bluez.device_calls(HEADSET) == ["Connect", "Connect", "Disconnect"]


async def test_refusals(bluez: BluezMock, manager: BluezBluetooth) -> None:
    with pytest.raises(BluetoothError, match="not started"):
        await manager.devices()
    await manager.start()
    with pytest.raises(BluetoothError, match="no device"):
        await manager.connect("00:00:00:00:00:01")
    with pytest.raises(ValueError, match="not a Bluetooth address"):
        await manager.connect("headset")


async def test_the_bluetooth_route_follows_a_real_manager(
    bluez: BluezMock, manager: BluezBluetooth
) -> None:
    output = FakeAudioOutput(Route.BLUETOOTH, present=False)
    presence = BluetoothAudioPresence(manager, output)
    bluez.add_device(HEADSET, "Jabra Evolve 65")
    bluez.add_device(PHONE, "Pixel 7", headset=False)
    await manager.start()
    bluez.device_connects(PHONE)  # a phone is no place to play the call
    bluez.device_connects(HEADSET)
    async with asyncio.timeout(10):
        while not output.present:
            await asyncio.sleep(0.01)
    assert presence.connected_audio_devices == {HEADSET}
    bluez.device_leaves(HEADSET)
    async with asyncio.timeout(10):
        while output.present:
            await asyncio.sleep(0.01)
    presence.close()


async def test_two_managers_in_one_process_each_hear_bluez(bluez: BluezMock) -> None:
    first, second = BluezBluetooth(bluez.address), BluezBluetooth(bluez.address)
    try:
        await first.start()
        await second.start()
        changes = Changes(first), Changes(second)
        bluez.add_device(HEADSET, "Jabra Evolve 65")
        bluez.device_connects(HEADSET)
        for seen in changes:
            await seen.until(HEADSET, connected=True)
    finally:
        await first.stop()
        await second.stop()


def test_create_needs_bluez_on_the_system_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    with pytest.raises(HardwareError) as raised:
        create(HalConfig(), KIT)
    assert raised.value.device == "bluetooth"
    assert "no system bus" in str(raised.value)
    bare_bus = private_system_bus()  # a bus, but no bluetoothd on it
    with bare_bus, pytest.raises(HardwareError, match=r"BlueZ \(bluetoothd\) is not running"):
        build_hardware(
            HalConfig.model_validate({"backend": "fake", "bluetooth": {"backend": "real"}}),
            KIT,
        )


async def test_a_call_offers_bluetooth_while_a_headset_is_connected(
    bluez: BluezMock, kits: KitFactory
) -> None:
    bluez.add_device(HEADSET, "Jabra Evolve 65")
    a = await kits("room-a", bluetooth={"backend": "real"})
    assert isinstance(a.hardware.bluetooth, BluezBluetooth)
    b = await kits("room-b")
    await a.join("bt")
    await b.join("bt")
    await a.wait_to_hear(b.tone_hz)
    mark = len(a.events)
    bluez.device_connects(HEADSET)
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert changed.data["modes"] == ["SPEAKER", "EARPIECE", "BLUETOOTH"]
    await a.wait_to_hear(b.tone_hz, route=Route.BLUETOOTH)  # it takes over, as on a phone
    mark = len(a.events)
    bluez.device_leaves(HEADSET)
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert changed.data["modes"] == ["SPEAKER", "EARPIECE"]
    await a.wait_to_hear(b.tone_hz, route=Route.SPEAKER)
