"""Builds a kit's hardware from config: per device kind a real driver, a fake, or nothing.

Every backend module (``hal.<kind>.real`` / ``hal.<kind>.fake``) exposes
``create(config: HalConfig, kit: KitIdentity)``, returning per kind:

- camera: ``list[Camera]`` (every camera found, limited to ``camera.devices``)
- audio: ``AudioDevices`` (microphone and one output per route; the BLUETOOTH output must
  also have ``set_present(bool)``, as its presence comes from the Bluetooth manager)
- bluetooth: ``Bluetooth``; buttons: ``Buttons``; display: ``Display``; input: ``Pointer``

Modules are imported only when chosen, so a fake never pulls in a hardware library, and a
real driver that cannot load is a clear start-up error naming the device rather than a silent
fallback to a fake. ``create`` may raise HardwareError itself when its device is missing.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from hal.audio.base import AudioDevices, AudioOutput, Microphone, Route
from hal.audio.presence import BluetoothAudioPresence, PresenceSettable
from hal.bluetooth.base import Bluetooth
from hal.buttons.base import Buttons
from hal.camera.base import Camera
from hal.config import HalConfig
from hal.display.base import Display
from hal.errors import HardwareError
from hal.input.base import Pointer
from hal.kit import KitIdentity

__all__ = ["KINDS", "Hardware", "KitIdentity", "build_hardware", "running_on_pi"]

log = logging.getLogger(__name__)

KINDS = ("camera", "audio", "bluetooth", "buttons", "display", "input")
Resolved = Literal["real", "fake", "disabled"]
PI_MODEL_FILE = Path("/proc/device-tree/model")


def running_on_pi(model_file: Path = PI_MODEL_FILE) -> bool:
    try:
        return "Raspberry Pi" in model_file.read_text(errors="replace")
    except OSError:
        return False


@dataclass
class Hardware:
    cameras: list[Camera] = field(default_factory=list)
    microphone: Microphone | None = None
    outputs: dict[Route, AudioOutput] = field(default_factory=dict)
    bluetooth: Bluetooth | None = None
    buttons: Buttons | None = None
    display: Display | None = None
    pointer: Pointer | None = None  # touch screen or mouse
    kinds: dict[str, str] = field(default_factory=dict)  # kind -> "real" | "fake" | "disabled"
    _on_close: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)
    _watchers: list[Callable[[], Awaitable[None]]] = field(
        default_factory=list, init=False, repr=False
    )

    def audio_xruns(self) -> dict[str, int]:
        """Under- and overruns each audio device recovered from, by device: ``microphone``
        and each route's lower-case name (``speaker``, ``headphones``...)."""
        counts = {route.value.lower(): out.xruns for route, out in self.outputs.items()}
        if self.microphone is not None:
            counts["microphone"] = self.microphone.xruns
        return counts

    async def close(self) -> None:
        """Release everything; a device that fails to close is logged and the rest still
        close. Safe to call twice."""
        for undo in self._on_close:
            undo()
        self._on_close.clear()
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            *(("audio watcher", stop) for stop in self._watchers),
            *((f"camera {camera.info.id}", camera.close) for camera in self.cameras),
            *((f"audio {route.value.lower()}", out.close) for route, out in self.outputs.items()),
        ]
        if self.microphone is not None:
            steps.append(("microphone", self.microphone.close))
        if self.bluetooth is not None:
            steps.append(("bluetooth", self.bluetooth.stop))
        if self.display is not None:
            steps.append(("display", self.display.close))
        if self.pointer is not None:
            steps.append(("input", self.pointer.close))
        if self.buttons is not None:
            # gpiozero joins its threads on close: keep that off the loop.
            steps.append(("buttons", _in_thread(self.buttons.close)))
        for name, close in steps:
            try:
                await close()
            except Exception:
                log.exception("%s: failed to close", name)


def _in_thread(function: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await asyncio.to_thread(function)

    return run


def build_hardware(config: HalConfig, kit: KitIdentity, *, is_pi: bool | None = None) -> Hardware:
    """The devices ``config`` asks for. ``auto`` means real on a Raspberry Pi (``is_pi``,
    detected when None) and fake elsewhere. Raises HardwareError naming the device when a real
    driver or its hardware library is missing or the device cannot be set up."""
    if is_pi is None:
        is_pi = running_on_pi()
    hardware = Hardware()
    try:
        _build(hardware, config, kit, is_pi)
    except BaseException:
        if hardware.buttons is not None:
            hardware.buttons.close()  # the only kind that claims its device on creation
        raise
    return hardware


def _build(hardware: Hardware, config: HalConfig, kit: KitIdentity, is_pi: bool) -> None:
    for kind in KINDS:
        backend = _resolve(config, kind, is_pi)
        hardware.kinds[kind] = backend
        if backend == "disabled":
            continue
        if backend == "fake":
            reason = "not on a Raspberry Pi" if config.backend_for(kind) == "auto" else "config"
            log.info("%s: fake device (%s)", kind, reason)
        device = _create(kind, backend, config, kit)
        if kind == "camera":
            hardware.cameras = list(cast("list[Camera]", device))
        elif kind == "audio":
            audio = cast(AudioDevices, device)
            hardware.microphone = audio.microphone
            hardware.outputs = dict(audio.outputs)
            hardware._watchers.extend(audio.watchers)
        elif kind == "bluetooth":
            hardware.bluetooth = cast(Bluetooth, device)
        elif kind == "buttons":
            hardware.buttons = cast(Buttons, device)
        elif kind == "display":
            hardware.display = cast(Display, device)
        else:
            hardware.pointer = cast(Pointer, device)
    _wire_bluetooth_route(hardware)


def _resolve(config: HalConfig, kind: str, is_pi: bool) -> Resolved:
    backend = config.backend_for(kind)
    if backend == "auto":
        return "real" if is_pi else "fake"
    return backend


def _create(kind: str, backend: Resolved, config: HalConfig, kit: KitIdentity) -> Any:
    module_name = f"hal.{kind}.{backend}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise HardwareError(kind, f"no {backend} driver: {module_name} is missing") from exc
        raise HardwareError(kind, f"{backend} driver needs {exc.name}, which is missing") from exc
    except ImportError as exc:
        raise HardwareError(kind, f"{backend} driver failed to load: {exc}") from exc
    try:
        return module.create(config, kit)
    except HardwareError:
        raise
    except ImportError as exc:
        raise HardwareError(kind, f"{backend} driver needs a missing library: {exc}") from exc
    except Exception as exc:
        raise HardwareError(kind, f"{backend} driver failed to start: {exc}") from exc


def _wire_bluetooth_route(hardware: Hardware) -> None:
    """The Bluetooth route exists only with a Bluetooth manager, and is present while the
    manager has a connected audio device."""
    output = hardware.outputs.get(Route.BLUETOOTH)
    if output is None:
        return
    if hardware.bluetooth is None:
        del hardware.outputs[Route.BLUETOOTH]
        return
    if not isinstance(output, PresenceSettable):
        raise HardwareError("audio", "the Bluetooth output cannot follow the Bluetooth manager")
    presence = BluetoothAudioPresence(hardware.bluetooth, output)
    hardware._on_close.append(presence.close)
