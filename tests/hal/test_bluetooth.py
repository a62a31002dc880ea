"""Fake Bluetooth manager, and the Bluetooth route's presence following it."""

from __future__ import annotations

import pytest

from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput
from hal.audio.presence import BluetoothAudioPresence
from hal.bluetooth.base import Bluetooth, BluetoothDevice, BluetoothError
from hal.bluetooth.fake import FakeBluetooth
from tests.hal.helpers import settle

HEADSET = "AA:BB:CC:DD:EE:01"
KEYBOARD = "AA:BB:CC:DD:EE:02"
SPEAKER = "AA:BB:CC:DD:EE:03"


async def test_scripted_devices_and_change_callbacks() -> None:
    bluetooth = FakeBluetooth()
    assert isinstance(bluetooth, Bluetooth)
    changes: list[BluetoothDevice] = []
    bluetooth.on_change(changes.append)
    bluetooth.add_device(HEADSET.lower(), "Headset")
    await bluetooth.start()
    await settle()
    # Once when it appeared, once more when the manager started watching.
    assert [(d.address, d.connected) for d in changes] == [(HEADSET, False), (HEADSET, False)]

    changes.clear()
    await bluetooth.connect(HEADSET)
    assert changes == []  # delivered on the loop
    await settle()
    assert [(d.address, d.connected) for d in changes] == [(HEADSET, True)]
    assert (await bluetooth.devices())[0].connected

    changes.clear()
    bluetooth.device_leaves(HEADSET)
    await settle()
    assert [(d.address, d.connected) for d in changes] == [(HEADSET, False)]
    with pytest.raises(BluetoothError, match="range"):
        await bluetooth.connect(HEADSET)

    bluetooth.device_connects(HEADSET)  # back in range, reconnects by itself
    await bluetooth.disconnect(HEADSET)
    await settle()
    assert [d.connected for d in changes] == [False, True, False]
    assert bluetooth.connects == [HEADSET, HEADSET]
    assert bluetooth.disconnects == [HEADSET]


async def test_refusals() -> None:
    bluetooth = FakeBluetooth()
    with pytest.raises(BluetoothError, match="not started"):
        await bluetooth.devices()
    await bluetooth.start()
    with pytest.raises(BluetoothError, match="no device"):
        await bluetooth.connect(HEADSET)
    bluetooth.add_device(HEADSET, "Headset", paired=False)
    with pytest.raises(BluetoothError, match="not paired"):
        await bluetooth.connect(HEADSET)
    with pytest.raises(ValueError, match="already known"):
        bluetooth.add_device(HEADSET, "Again")
    with pytest.raises(ValueError, match="address"):
        bluetooth.add_device("not-an-address", "Bad")
    await bluetooth.stop()
    await bluetooth.stop()
    assert (bluetooth.starts, bluetooth.stops) == (1, 1)


async def test_bluetooth_route_is_present_while_an_audio_device_is_connected() -> None:
    bluetooth = FakeBluetooth()
    output = FakeAudioOutput(Route.BLUETOOTH, present=False)
    presence_seen: list[bool] = []
    output.on_presence_changed(presence_seen.append)
    presence = BluetoothAudioPresence(bluetooth, output)
    await bluetooth.start()
    bluetooth.add_device(HEADSET, "Headset")
    bluetooth.add_device(KEYBOARD, "Keyboard", audio=False)
    bluetooth.add_device(SPEAKER, "Speaker")

    bluetooth.device_connects(KEYBOARD)
    await settle()
    assert not output.present  # a keyboard plays no audio

    bluetooth.device_connects(HEADSET)
    await settle()
    assert output.present
    bluetooth.device_connects(SPEAKER)
    bluetooth.device_leaves(HEADSET)
    await settle()
    assert output.present  # the speaker is still there
    await bluetooth.disconnect(SPEAKER)
    await settle()
    assert not output.present
    assert presence_seen == [True, False]

    presence.close()
    bluetooth.device_connects(HEADSET)
    await settle()
    assert not output.present
