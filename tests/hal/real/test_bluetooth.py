"""The BlueZ driver against python-dbusmock's bluez5 template on a private system bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hal.audio.base import Route
from hal.audio.capture import AlsaMicrophone
from hal.audio.fake import FakeAudioOutput
from hal.audio.pcm import dominant_frequency, tone
from hal.audio.presence import BluetoothAudioPresence
from hal.audio.real import AlsaOutput
from hal.audio.real import create as audio_create
from hal.bluetooth.base import Bluetooth, BluetoothDevice, BluetoothError
from hal.bluetooth.real import BluezBluetooth, create
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity
from hal.registry import build_hardware
from tests.hal.real.bluez import HFP_ONLY_UUIDS, BluezMock, private_system_bus
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
    assert await manager.powered()
    assert manager.adapter_path == "/org/bluez/hci0"
    assert isinstance(manager, Bluetooth)
    headset = await changes.until(HEADSET)
    phone = await changes.until(PHONE)
    assert headset == BluetoothDevice(HEADSET, "Jabra Evolve 65", True, False, True)
    assert phone == BluetoothDevice(PHONE, "Pixel 7", True, False, False)  # no audio sink
    assert sorted(d.address for d in await manager.devices()) == sorted([HEADSET, PHONE])


async def test_powered_reads_the_adapter_as_bluez_has_it_now(
    bluez: BluezMock, manager: BluezBluetooth
) -> None:
    await manager.start()
    assert await manager.powered()
    bluez.power_off()  # rfkill, or someone with bluetoothctl
    assert not await manager.powered()


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


# --- bluez-alsa's PCM per headset and profile, on real alsa-lib ----------------------------

MONO_HEADSET = "00:1B:66:CC:DD:02"


def bluealsa_config(root: Path, room: np.ndarray[Any, Any], headset: np.ndarray[Any, Any]) -> Path:
    """alsa-lib with ``bluealsa`` taking DEV and PROFILE as bluez-alsa's 20-bluealsa.conf
    does (PROFILE defaulting to a2dp), each profile's playback and capture in its own file
    (an ``asym`` PCM: the file plugin would also write what it captures);
    the room's microphone and speaker beside it."""
    root.mkdir(parents=True, exist_ok=True)
    room.astype("<i2").tofile(root / "room-mic.raw")
    for profile in ("a2dp", "sco"):
        headset.astype("<i2").tofile(root / f"bt-mic-{profile}.raw")
    (root / "asound.conf").write_text(
        f"""pcm.null {{ type null }}
pcm.test_mic {{ type file slave.pcm "null" file "/dev/null" infile "{root}/room-mic.raw" }}
pcm.test_speaker {{ type file slave.pcm "null" file "{root}/speaker.raw" format "raw" }}
defaults.bluealsa.device "00:00:00:00:00:00"
defaults.bluealsa.profile "a2dp"
pcm.bluealsa {{
    @args [ DEV PROFILE ]
    @args.DEV {{ type string default {{ @func refer name defaults.bluealsa.device }} }}
    @args.PROFILE {{ type string default {{ @func refer name defaults.bluealsa.profile }} }}
    type asym
    playback.pcm {{
        type file
        slave.pcm "null"
        file {{ @func concat strings [ "{root}/bt-" $PROFILE "-" $DEV ".raw" ] }}
        format "raw"
    }}
    capture.pcm {{
        type file
        slave.pcm "null"
        file "/dev/null"
        infile {{ @func concat strings [ "{root}/bt-mic-" $PROFILE ".raw" ] }}
        format "raw"
    }}
}}
"""
    )
    return root / "asound.conf"


@pytest.mark.parametrize(
    ("uuids", "profile"), [(HFP_ONLY_UUIDS, "sco"), (None, "a2dp")], ids=["hfp-only", "a2dp"]
)
async def test_a_headset_plays_on_its_own_profile_and_an_hfp_only_one_is_the_microphone(
    bluez: BluezMock,
    manager: BluezBluetooth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uuids: list[str] | None,
    profile: str,
) -> None:
    room = np.concatenate(list(tone(440, level_dbfs=-10, frames=100)))
    headset = np.concatenate(list(tone(1000, level_dbfs=-10, frames=100)))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(bluealsa_config(tmp_path, room, headset)))
    devices = audio_create(
        HalConfig.model_validate(
            {"audio": {"backend": "real", "capture": "test_mic", "speaker": "test_speaker"}}
        ),
        KIT,
    )
    output = devices.outputs[Route.BLUETOOTH]
    microphone = devices.microphone
    assert isinstance(output, AlsaOutput) and isinstance(microphone, AlsaMicrophone)
    presence = BluetoothAudioPresence(manager, output)
    bluez.add_device(MONO_HEADSET, "Voyager", uuids=uuids)
    await manager.start()
    await microphone.open()
    try:
        assert dominant_frequency(await microphone.read()) == pytest.approx(440, abs=5)
        bluez.device_connects(MONO_HEADSET)
        async with asyncio.timeout(10):
            while not output.present:
                await asyncio.sleep(0.01)
        assert output.device == f"bluealsa:DEV={MONO_HEADSET},PROFILE={profile}"
        await output.open()  # the router does so: the headset takes the call
        call = list(tone(700, frames=5))
        for pcm in call:
            await output.write(pcm)
        # The microphone's thread reads up to 10 periods ahead: the switch shows after those.
        heard = [dominant_frequency(await microphone.read()) for _ in range(20)]
        await output.close()
        after = [dominant_frequency(await microphone.read()) for _ in range(20)]
    finally:
        await microphone.close()
        presence.close()
    played = np.fromfile(tmp_path / f"bt-{profile}-{MONO_HEADSET}.raw", "<i2")
    assert dominant_frequency(played[-len(call) * 960 :]) == pytest.approx(700, abs=5)
    if profile == "sco":  # the headset's microphone while its route plays, then the room's
        assert heard[-1] == pytest.approx(1000, abs=5)
        assert microphone.captured_from == ["test_mic", output.device, "test_mic"]
    else:  # A2DP has no microphone: the room's all along
        assert all(f == pytest.approx(440, abs=5) for f in heard)
        assert microphone.captured_from == ["test_mic"]
    assert after[-1] == pytest.approx(440, abs=5)
