"""One set of HAL protocol tests, run against each fake and each real driver (the real ones
on real system software where it exists off a Pi: alsa-lib, BlueZ's D-Bus API through
dbusmock, PyAV's inputs, a framebuffer file; picamera2 simulated, pykms mocked)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from hal.audio.base import FRAME_SAMPLES, AudioError, AudioOutput, Microphone, Route
from hal.bluetooth.base import Bluetooth, BluetoothDevice, BluetoothError
from hal.bluetooth.fake import FakeBluetooth
from hal.bluetooth.real import BluezBluetooth
from hal.buttons.base import ButtonName, Buttons, LedName, LedState, Press
from hal.buttons.fake import FakeButtons
from hal.buttons.gpio import GpioButtons
from hal.camera.base import Camera, CameraError, CameraInfo, EncodingCamera, VideoFormat
from hal.camera.real import PicameraCamera
from hal.camera.v4l2 import PyAvCamera
from hal.config import ButtonsConfig, HalConfig
from hal.display.base import Display, DisplayError
from hal.display.fake import FakeDisplay
from hal.display.fbdev import FramebufferDisplay
from hal.display.real import KmsDisplay
from hal.errors import HardwareError
from hal.kit import KitIdentity
from hal.registry import build_hardware
from tests.hal.real.alsa import AlsaSetup
from tests.hal.real.bluez import BluezMock
from tests.hal.real.picamera_sim import force_sim_keyframe, sim_library

KIT = KitIdentity("room-a", "Room A")
SMALL = VideoFormat(320, 240, 30)

# --- cameras ------------------------------------------------------------------------------


def fake_camera(output: str) -> Camera:
    from hal.camera.fake import create

    config = HalConfig.model_validate({"camera": {"fake_output": output}})
    return create(config, KIT)[0]


CAMERAS: dict[str, Callable[[], Camera]] = {
    "fake": lambda: fake_camera("frames"),
    "fake-h264": lambda: fake_camera("h264"),
    "picamera2-pi4": lambda: PicameraCamera(
        sim_library(),
        0,
        CameraInfo("csi0", "Camera Module 3", "h264"),
        keyframe_interval=30,
        force_keyframe=force_sim_keyframe,
    ),
    "picamera2-pi5": lambda: PicameraCamera(
        sim_library(), 0, CameraInfo("csi0", "Camera Module 3", "frames"), keyframe_interval=30
    ),
    "uvc-webcam": lambda: PyAvCamera(
        CameraInfo("usb-1d6b:0102", "Webcam"),
        "testsrc2=size=640x480:rate=30,realtime",
        input_format="lavfi",
        options=lambda fmt: [{}],
    ),
}


@pytest.fixture(params=list(CAMERAS))
async def camera(request: pytest.FixtureRequest) -> AsyncIterator[Camera]:
    device = CAMERAS[request.param]()
    yield device
    await device.close()


async def test_camera_streams_what_its_info_says(camera: Camera) -> None:
    assert isinstance(camera, Camera)
    assert not camera.is_open
    camera.request_keyframe()  # harmless while closed
    await camera.open(SMALL)
    assert camera.is_open
    items = [await camera.read() for _ in range(3)]
    if camera.info.output == "h264":
        assert isinstance(camera, EncodingCamera)
        assert all(isinstance(item, av.Packet) for item in items)
        decoder = av.CodecContext.create("h264", "r")
        decoded = [frame for packet in items for frame in decoder.decode(packet)]
        assert decoded  # the first packet is a key frame a decoder can start from
        preview = await camera.read_preview()
        assert preview.format.name == "yuv420p"
        assert preview.width <= SMALL.width
    else:
        assert all(isinstance(item, av.VideoFrame) for item in items)
        assert {(f.width, f.height, f.format.name) for f in items} == {(320, 240, "yuv420p")}
    camera.request_keyframe()


async def test_camera_is_claimed_once_and_released_on_close(camera: Camera) -> None:
    await camera.open(SMALL)
    with pytest.raises(CameraError, match="already open"):
        await camera.open(SMALL)
    await camera.close()
    await camera.close()
    assert not camera.is_open
    with pytest.raises(CameraError):
        await camera.read()
    await camera.open(SMALL)  # released: it can be opened again
    assert camera.is_open
    await camera.read()


# --- audio --------------------------------------------------------------------------------


@dataclass
class AudioWorld:
    microphone: Microphone
    outputs: dict[Route, AudioOutput]


@pytest.fixture(params=["fake", "alsa"])
def audio(request: pytest.FixtureRequest) -> AudioWorld:
    if request.param == "fake":
        from hal.audio.fake import create as fake_audio

        devices = fake_audio(HalConfig(), KIT)
    else:
        from hal.audio.real import create as real_audio

        setup: AlsaSetup = request.getfixturevalue("alsa_setup")
        devices = real_audio(HalConfig.model_validate({"audio": setup.hal_audio()}), KIT)
    assert devices.microphone is not None
    return AudioWorld(devices.microphone, devices.outputs)


async def test_microphone_protocol(audio: AudioWorld) -> None:
    microphone = audio.microphone
    assert isinstance(microphone, Microphone)
    with pytest.raises(AudioError, match="not open"):
        await microphone.read()
    await microphone.open()
    with pytest.raises(AudioError, match="already open"):
        await microphone.open()
    frames = [await microphone.read() for _ in range(5)]
    assert {(f.dtype, f.shape) for f in frames} == {(np.dtype(np.int16), (FRAME_SAMPLES,))}
    assert max(int(np.abs(f).max()) for f in frames) > 1000  # a tone, not silence
    await microphone.close()
    await microphone.close()
    assert not microphone.is_open


async def test_output_protocol(audio: AudioWorld) -> None:
    speaker = audio.outputs[Route.SPEAKER]
    assert isinstance(speaker, AudioOutput)
    assert speaker.route is Route.SPEAKER
    assert speaker.present
    with pytest.raises(AudioError, match="not open"):
        await speaker.write(np.zeros(FRAME_SAMPLES, np.int16))
    await speaker.open()
    await speaker.write(np.zeros(FRAME_SAMPLES, np.int16))
    with pytest.raises(ValueError, match="int16"):
        await speaker.write(np.zeros((2, FRAME_SAMPLES), np.int16))
    await speaker.close()
    await speaker.close()


async def test_bluetooth_output_exists_only_with_a_headset(audio: AudioWorld) -> None:
    sink = audio.outputs[Route.BLUETOOTH]
    assert not sink.present
    seen: list[bool] = []
    sink.on_presence_changed(seen.append)
    with pytest.raises(AudioError, match="no device connected"):
        await sink.open()
    sink.set_present(True)  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    assert seen == [True]
    await sink.open()
    await sink.write(np.zeros(FRAME_SAMPLES, np.int16))
    await sink.close()


# --- Bluetooth ----------------------------------------------------------------------------


@dataclass
class BluetoothWorld:
    """A manager and the means to move headsets around it, for either backend."""

    manager: Bluetooth
    add_headset: Callable[[str, str], None]
    comes: Callable[[str], None]
    goes: Callable[[str], None]


@pytest.fixture(params=["fake", "bluez"])
async def bluetooth(request: pytest.FixtureRequest) -> AsyncIterator[BluetoothWorld]:
    if request.param == "fake":
        fake = FakeBluetooth()
        world = BluetoothWorld(
            fake, lambda a, n: fake.add_device(a, n), fake.device_connects, fake.device_leaves
        )
    else:
        mock: BluezMock = request.getfixturevalue("bluez")
        world = BluetoothWorld(
            BluezBluetooth(mock.address), mock.add_device, mock.device_connects, mock.device_leaves
        )
    yield world
    await world.manager.stop()


async def latest(seen: list[BluetoothDevice], address: str, **state: bool) -> None:
    async with asyncio.timeout(10):
        while not any(
            d.address == address and all(getattr(d, k) == v for k, v in state.items())
            for d in seen[-1:]
        ):
            await asyncio.sleep(0.01)


async def test_bluetooth_protocol(bluetooth: BluetoothWorld) -> None:
    manager = bluetooth.manager
    assert isinstance(manager, Bluetooth)
    with pytest.raises(BluetoothError, match="not started"):
        await manager.devices()
    seen: list[BluetoothDevice] = []
    manager.on_change(seen.append)
    bluetooth.add_headset("00:1B:66:AA:BB:01", "Jabra Evolve 65")
    await manager.start()
    await latest(seen, "00:1B:66:AA:BB:01", paired=True, connected=False, audio=True)
    await manager.connect("00:1b:66:aa:bb:01")
    await latest(seen, "00:1B:66:AA:BB:01", connected=True)
    await manager.disconnect("00:1B:66:AA:BB:01")
    await latest(seen, "00:1B:66:AA:BB:01", connected=False)
    bluetooth.comes("00:1B:66:AA:BB:01")  # switched on: it connects by itself
    await latest(seen, "00:1B:66:AA:BB:01", connected=True)
    bluetooth.goes("00:1B:66:AA:BB:01")  # out of range
    await latest(seen, "00:1B:66:AA:BB:01", connected=False)
    assert [d.address for d in await manager.devices()] == ["00:1B:66:AA:BB:01"]
    with pytest.raises(BluetoothError, match="no device"):
        await manager.connect("00:00:00:00:00:09")
    with pytest.raises(ValueError, match="not a Bluetooth address"):
        await manager.disconnect("nonsense")


# --- buttons ------------------------------------------------------------------------------


BUTTONS: dict[str, Callable[[ButtonsConfig], tuple[Buttons, Any]]] = {
    # The real driver is GpioButtons on lgpio's pin factory; here on gpiozero's mock one.
    "fake": lambda config: (lambda b: (b, b.pin_factory))(FakeButtons(config)),
    "gpio": lambda config: (lambda f: (GpioButtons(config, f, blink_period_s=0.2), f))(
        MockFactory()
    ),
}


@pytest.mark.parametrize("kind", list(BUTTONS))
async def test_buttons_protocol(kind: str) -> None:
    config = ButtonsConfig(long_press_s=0.2)
    buttons, factory = BUTTONS[kind](config)
    assert isinstance(buttons, Buttons)
    presses: asyncio.Queue[tuple[ButtonName, Press]] = asyncio.Queue()
    buttons.start(lambda name, press: presses.put_nowait((name, press)))
    try:
        for name, pin in ((ButtonName.MUTE, config.mute), (ButtonName.PAUSE, config.pause)):
            factory.pin(pin).drive_low()
            factory.pin(pin).drive_high()
            assert await asyncio.wait_for(presses.get(), 2) == (name, Press.SHORT)
        end = factory.pin(config.end)
        end.drive_low()
        assert await asyncio.wait_for(presses.get(), 2) == (ButtonName.END, Press.LONG)
        end.drive_high()
        end.drive_low()
        end.drive_high()
        assert await asyncio.wait_for(presses.get(), 2) == (ButtonName.END, Press.SHORT)
        assert presses.empty()
        buttons.set_led(LedName.MUTED, LedState.ON)
        assert buttons.led_state(LedName.MUTED) is LedState.ON
        assert factory.pin(config.led_muted).state
        buttons.set_led(LedName.MUTED, LedState.OFF)
        assert not factory.pin(config.led_muted).state
    finally:
        await asyncio.to_thread(buttons.close)


# --- displays -----------------------------------------------------------------------------


@pytest.fixture(params=["fake", "fbdev", "kms"])
async def display(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Display]:
    device: Display
    if request.param == "fake":
        device = FakeDisplay(320, 240)
    elif request.param == "fbdev":
        path = tmp_path / "fb0"
        path.write_bytes(bytes(320 * 240 * 4))
        device = FramebufferDisplay(str(path), width=320, height=240, allow_regular_file=True)
    else:
        device = KmsDisplay(request.getfixturevalue("pykms"), 320, 240)
    yield device
    await device.close()


async def test_display_protocol(display: Display) -> None:
    assert isinstance(display, Display)
    assert display.size == (320, 240)
    assert display.connected
    frame = np.full((240, 320, 3), 90, np.uint8)
    with pytest.raises(DisplayError, match="not open"):
        await display.show(frame)
    await display.open()
    await display.show(frame)
    with pytest.raises(ValueError, match="320x240"):
        await display.show(np.zeros((480, 640, 3), np.uint8))
    await display.close()
    await display.close()


# --- selection ----------------------------------------------------------------------------


MISSING: dict[str, Callable[[pytest.MonkeyPatch, Path], None]] = {
    "camera": lambda mp, tmp: mp.setitem(sys.modules, "picamera2", None),
    "audio": lambda mp, tmp: mp.setenv("ALSA_CONFIG_PATH", str(_empty(tmp / "asound.conf"))),
    "bluetooth": lambda mp, tmp: mp.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp}/nobus"),
    "buttons": lambda mp, tmp: mp.setitem(sys.modules, "gpiozero.pins.lgpio", None),
    "display": lambda mp, tmp: mp.setitem(sys.modules, "pykms", None),
}


def _empty(path: Path) -> Path:
    path.write_text("\n")
    return path


@pytest.mark.parametrize("kind", list(MISSING))
def test_on_a_pi_a_missing_device_is_a_start_up_error_naming_it(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    MISSING[kind](monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "kms", None)
    config = HalConfig.model_validate(
        {
            "backend": "fake",  # every other device
            "input": {"backend": "disabled"},
            "display": {"framebuffer": str(tmp_path / "no-fb")},
        }
    )
    section = getattr(config, kind).model_copy(update={"backend": "auto"})
    config = config.model_copy(update={kind: section})
    with pytest.raises(HardwareError) as raised:
        build_hardware(config, KIT, is_pi=True)
    assert raised.value.device == kind
    # Disabled, the same device is simply absent: the kit starts without it.
    disabled = config.model_copy(update={kind: section.model_copy(update={"backend": "disabled"})})
    hardware = build_hardware(disabled, KIT, is_pi=True)
    assert hardware.kinds[kind] == "disabled"
    asyncio.run(hardware.close())
