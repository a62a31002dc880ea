"""BlueZ for tests: python-dbusmock's ``bluez5`` template on a private system bus."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dbus
from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock

BLUEZ_MOCK = "org.bluez.Mock"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
MOCK = "org.freedesktop.DBus.Mock"
HEADSET_UUIDS = [
    "0000110b-0000-1000-8000-00805f9b34fb",  # A2DP sink
    "0000111e-0000-1000-8000-00805f9b34fb",  # HFP hands-free
]
# A mono headset of the office kind: hands-free and headset profiles, no A2DP.
HFP_ONLY_UUIDS = [
    "0000111e-0000-1000-8000-00805f9b34fb",  # HFP hands-free
    "00001108-0000-1000-8000-00805f9b34fb",  # HSP headset
]


class BluezMock:
    """Drives the mock BlueZ the way devices and users would."""

    def __init__(self, bus: PrivateDBus, spawned: SpawnedMock, adapter: str = "hci0") -> None:
        self.bus = bus
        self.address = bus.address
        self._spawned = spawned
        self._connection = dbus.bus.BusConnection(bus.address)
        self.adapter = adapter
        self._mock = dbus.Interface(spawned.obj, BLUEZ_MOCK)
        self._mock.AddAdapter(adapter, "callbox")

    def _object(self, address: str) -> Any:
        path = f"/org/bluez/{self.adapter}/dev_{address.replace(':', '_')}"
        return self._connection.get_object("org.bluez", path)

    def add_device(
        self, address: str, name: str, *, headset: bool = True, uuids: list[str] | None = None
    ) -> None:
        """A device that has been paired with the kit before; a headset has A2DP and HFP
        unless ``uuids`` says which services it offers."""
        self._mock.AddDevice(self.adapter, address, name)
        self._mock.PairDevice(self.adapter, address)
        if headset:  # the template pairs like a phone; give it a headset's services
            services = HEADSET_UUIDS if uuids is None else uuids
            dbus.Interface(self._object(address), MOCK).UpdateProperties(
                DEVICE, {"UUIDs": dbus.Array(services, signature="s")}
            )

    def device_connects(self, address: str) -> None:
        self._mock.ConnectDevice(self.adapter, address)

    def device_leaves(self, address: str) -> None:
        self._mock.DisconnectDevice(self.adapter, address)

    def device_calls(self, address: str) -> list[str]:
        """The Device1 methods called on the device, in order (the mock's own log)."""
        calls = dbus.Interface(self._object(address), MOCK).GetCalls()
        return [str(method) for _, method, _ in calls if str(method) in ("Connect", "Disconnect")]

    def power_off(self) -> None:
        adapter = self._connection.get_object("org.bluez", f"/org/bluez/{self.adapter}")
        dbus.Interface(adapter, MOCK).UpdateProperties(ADAPTER, {"Powered": False})

    def adapter_powered(self) -> bool:
        adapter = self._connection.get_object("org.bluez", f"/org/bluez/{self.adapter}")
        return bool(adapter.Get(ADAPTER, "Powered", dbus_interface=dbus.PROPERTIES_IFACE))

    def close(self) -> None:
        self._connection.close()
        self._spawned.terminate()


@contextmanager
def private_system_bus() -> Iterator[PrivateDBus]:
    """A dbus-daemon of our own; ``DBUS_SYSTEM_BUS_ADDRESS`` points at it meanwhile (the
    caller restores it, e.g. with monkeypatch)."""
    with PrivateDBus(BusType.SYSTEM) as bus:
        yield bus


@contextmanager
def mock_bluez() -> Iterator[BluezMock]:
    with private_system_bus() as bus:
        spawned = SpawnedMock.spawn_with_template("bluez5", {}, BusType.SYSTEM)
        mock = BluezMock(bus, spawned)
        try:
            yield mock
        finally:
            mock.close()
