"""A fake Bluetooth manager with scriptable headsets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from hal.bluetooth.base import BluetoothDevice, BluetoothError
from hal.callbacks import CallbackList
from hal.config import HalConfig
from hal.kit import KitIdentity

_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


@dataclass
class _Known:
    device: BluetoothDevice
    in_range: bool = True


class FakeBluetooth:
    """Implements the ``Bluetooth`` protocol over devices a test scripts.

    Scripting: ``add_device(address, name, audio=True, paired=True)`` (a device in range, not
    connected), ``adapter_powered = False`` (the adapter will not power on),
    ``device_connects(address)`` (it connects by itself, as a headset does when
    switched on), ``device_leaves(address)`` (it walks out of range and drops).
    Records: ``connects`` and ``disconnects`` (addresses asked for), ``starts``, ``stops``.
    Change callbacks run on the event loop."""

    def __init__(self) -> None:
        self._known: dict[str, _Known] = {}
        self._callbacks: CallbackList[BluetoothDevice] = CallbackList()
        self.started = False
        self.adapter_powered = True  # scripting: False is an adapter that stays off
        self.starts = 0
        self.stops = 0
        self.connects: list[str] = []
        self.disconnects: list[str] = []

    # ---- the protocol ----

    async def start(self) -> None:
        self.started = True
        self.starts += 1
        for known in self._known.values():
            self._callbacks.fire(known.device)

    async def stop(self) -> None:
        if self.started:
            self.stops += 1
        self.started = False

    async def devices(self) -> list[BluetoothDevice]:
        self._require_started()
        return self.known_devices

    async def powered(self) -> bool:
        self._require_started()
        return self.adapter_powered

    async def connect(self, address: str) -> None:
        self._require_started()
        address = _normalise(address)
        self.connects.append(address)
        known = self._lookup(address)
        if not known.device.paired:
            raise BluetoothError("bluetooth", f"{address} is not paired")
        if not known.in_range:
            raise BluetoothError("bluetooth", f"{address} is not in range")
        self._set_connected(known, True)

    async def disconnect(self, address: str) -> None:
        self._require_started()
        address = _normalise(address)
        self.disconnects.append(address)
        self._set_connected(self._lookup(address), False)

    def on_change(self, callback: Callable[[BluetoothDevice], None]) -> Callable[[], None]:
        return self._callbacks.add(callback)

    # ---- scripting ----

    @property
    def known_devices(self) -> list[BluetoothDevice]:
        return [known.device for known in self._known.values()]

    def device(self, address: str) -> BluetoothDevice:
        return self._lookup(_normalise(address)).device

    def add_device(
        self, address: str, name: str, *, audio: bool = True, paired: bool = True
    ) -> BluetoothDevice:
        address = _normalise(address)
        if address in self._known:
            raise ValueError(f"{address} is already known")
        device = BluetoothDevice(address, name, paired=paired, connected=False, audio=audio)
        self._known[address] = _Known(device)
        self._callbacks.fire(device)
        return device

    def device_connects(self, address: str) -> None:
        """The device comes into range (if it was away) and connects."""
        known = self._lookup(_normalise(address))
        known.in_range = True
        self._set_connected(known, True)

    def device_leaves(self, address: str) -> None:
        """The device goes out of range: it drops its connection and cannot be connected."""
        known = self._lookup(_normalise(address))
        known.in_range = False
        self._set_connected(known, False)

    # ---- internals ----

    def _require_started(self) -> None:
        if not self.started:
            raise BluetoothError("bluetooth", "not started")

    def _lookup(self, address: str) -> _Known:
        try:
            return self._known[address]
        except KeyError:
            raise BluetoothError("bluetooth", f"no device {address}") from None

    def _set_connected(self, known: _Known, connected: bool) -> None:
        if known.device.connected != connected:
            known.device = replace(known.device, connected=connected)
            self._callbacks.fire(known.device)


def _normalise(address: str) -> str:
    address = address.upper()
    if not _ADDRESS.match(address):
        raise ValueError(f"not a Bluetooth address: {address!r}")
    return address


def create(config: HalConfig, kit: KitIdentity) -> FakeBluetooth:
    """An adapter with no devices yet: tests and demos add them."""
    return FakeBluetooth()
