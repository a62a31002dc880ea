"""Bluetooth through BlueZ's D-Bus API (pydbus), with a GLib main loop on its own thread.

The manager keeps BlueZ's devices (``org.bluez.Device1``) as BlueZ reports them: the
objects present at start, then ``InterfacesAdded``/``InterfacesRemoved`` and
``PropertiesChanged``. A device counts as audio when it offers an A2DP sink or the headset
side of HFP/HSP, so the Bluetooth route appears while such a device is connected. Audio
itself flows through bluez-alsa's PCM (see ``hal.audio.real``): A2DP where the device has
it, else both ways over SCO (``sco_only``).

Each manager has its own D-Bus connection and GLib main context, so several kits in one
process do not share a loop; changes reach the asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hal.bluetooth.base import BluetoothDevice, BluetoothError
from hal.callbacks import CallbackList
from hal.config import HalConfig
from hal.kit import KitIdentity

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
START_SECONDS = 10.0
# Services that make a device something to talk and listen through.
AUDIO_UUIDS = frozenset(
    {
        "0000110b-0000-1000-8000-00805f9b34fb",  # A2DP audio sink
        "0000111e-0000-1000-8000-00805f9b34fb",  # HFP hands-free (the headset side)
        "00001108-0000-1000-8000-00805f9b34fb",  # HSP headset
    }
)
A2DP_SINK = "0000110b-0000-1000-8000-00805f9b34fb"
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def system_bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS


def device_from(properties: dict[str, Any]) -> BluetoothDevice:
    address = str(properties.get("Address", "")).upper()
    uuids = {str(uuid).lower() for uuid in properties.get("UUIDs", [])}
    return BluetoothDevice(
        address=address,
        name=str(properties.get("Alias") or properties.get("Name") or address),
        paired=bool(properties.get("Paired", False)),
        connected=bool(properties.get("Connected", False)),
        audio=bool(uuids & AUDIO_UUIDS),
        sco_only=bool(uuids & (AUDIO_UUIDS - {A2DP_SINK})) and A2DP_SINK not in uuids,
    )


@dataclass
class _Known:
    path: str
    properties: dict[str, Any]


def _import_glib() -> tuple[Any, Any]:
    try:
        import pydbus
        from gi.repository import GLib
    except ImportError as exc:
        raise BluetoothError(
            "bluetooth",
            f"pydbus/PyGObject cannot be imported ({exc}): install python3-gi (or PyGObject) "
            "and pydbus",
        ) from exc
    return pydbus, GLib


class BluezBluetooth:
    """Implements the ``Bluetooth`` protocol on BlueZ. ``bus_address`` defaults to the
    system bus (``DBUS_SYSTEM_BUS_ADDRESS`` when set)."""

    def __init__(self, bus_address: str | None = None) -> None:
        self._bus_address = bus_address
        self._callbacks: CallbackList[BluetoothDevice] = CallbackList()
        self._known: dict[str, _Known] = {}  # by address; the GLib thread's own
        self._devices: dict[str, BluetoothDevice] = {}  # by address; the loop's copy
        self._paths: dict[str, str] = {}  # address -> object path; the loop's copy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._glib: Any = None
        self._context: Any = None
        self._glib_loop: Any = None
        self._bus: Any = None
        self.adapter_path: str | None = None
        self.started = False

    # --- the protocol ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        ready: asyncio.Future[list[tuple[BluetoothDevice, str]]] = loop.create_future()
        thread = threading.Thread(target=self._run, args=(ready,), name="bluez", daemon=True)
        self._thread = thread
        thread.start()
        try:
            async with asyncio.timeout(START_SECONDS):
                known = await ready
        except TimeoutError:
            await self.stop()
            raise BluetoothError("bluetooth", "BlueZ did not answer") from None
        except BluetoothError:
            await self.stop()
            raise
        self.started = True
        for found in known:  # subscribers learn what is already there
            self._changed(found)

    async def stop(self) -> None:
        self.started = False
        glib_loop, thread = self._glib_loop, self._thread
        self._thread = None
        if glib_loop is not None:
            # Quit from inside the loop: a quit() before its run() began would be lost.
            source = self._glib.idle_source_new()
            source.set_callback(_quit, glib_loop)
            source.attach(self._context)
        if thread is not None:
            await asyncio.to_thread(thread.join, START_SECONDS)
            if thread.is_alive():
                log.warning("bluetooth: the GLib loop did not stop; leaving it behind")

    async def devices(self) -> list[BluetoothDevice]:
        self._require_started()
        return list(self._devices.values())

    async def powered(self) -> bool:
        """BlueZ's Adapter1.Powered, read on a worker thread."""
        self._require_started()
        bus, path = self._bus, self.adapter_path
        if bus is None or path is None:
            return False

        def read() -> bool:
            return bool(bus.get(BLUEZ, path)[ADAPTER].Powered)

        try:
            return await asyncio.to_thread(read)
        except Exception as exc:  # GLib.Error: BlueZ gone, adapter removed
            raise BluetoothError("bluetooth", f"adapter: {_dbus_message(exc)}") from exc

    async def connect(self, address: str) -> None:
        address = self._check(address)
        device = self._devices.get(address)
        if device is not None and not device.paired:
            raise BluetoothError("bluetooth", f"{address} is not paired")
        await self._call(address, "Connect")

    async def disconnect(self, address: str) -> None:
        await self._call(self._check(address), "Disconnect")

    def on_change(self, callback: Callable[[BluetoothDevice], None]) -> Callable[[], None]:
        return self._callbacks.add(callback)

    # --- on the loop ----------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self.started:
            raise BluetoothError("bluetooth", "not started")

    def _check(self, address: str) -> str:
        self._require_started()
        address = address.upper()
        if not _ADDRESS.match(address):
            raise ValueError(f"not a Bluetooth address: {address!r}")
        if address not in self._devices:
            raise BluetoothError("bluetooth", f"no device {address}")
        return address

    async def _call(self, address: str, method: str) -> None:
        """A Device1 method: BlueZ answers a Connect only once the profiles are up (seconds),
        so it runs on a worker thread; the state change arrives as a signal."""
        bus, path = self._bus, self._paths.get(address)
        if bus is None or path is None:
            raise BluetoothError("bluetooth", f"no device {address}")

        def call() -> None:
            getattr(bus.get(BLUEZ, path)[DEVICE], method)()

        try:
            await asyncio.to_thread(call)
        except Exception as exc:  # GLib.Error from BlueZ: org.bluez.Error.*
            raise BluetoothError("bluetooth", f"{method} {address}: {_dbus_message(exc)}") from exc

    def _changed(self, found: tuple[BluetoothDevice, str]) -> None:
        device, path = found
        self._paths[device.address] = path
        if self._devices.get(device.address) == device:
            return
        self._devices[device.address] = device
        self._callbacks.fire(device)

    def _forget(self, address: str) -> None:
        self._paths.pop(address, None)
        device = self._devices.pop(address, None)
        if device is not None and (device.connected or device.paired):
            # Removed from BlueZ (unpaired): it is neither paired nor connected any more.
            self._callbacks.fire(BluetoothDevice(address, device.name, False, False, device.audio))

    # --- the GLib thread ------------------------------------------------------------------

    def _run(self, ready: asyncio.Future[list[tuple[BluetoothDevice, str]]]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            pydbus, glib = _import_glib()
            context = glib.MainContext.new()
            context.push_thread_default()  # signal subscriptions below deliver here
            glib_loop = glib.MainLoop.new(context, False)
            bus = pydbus.connect(self._bus_address or system_bus_address())
            bus.subscribe(
                sender=BLUEZ, iface=OBJECT_MANAGER, signal_fired=self._object_manager_signal
            )
            bus.subscribe(
                sender=BLUEZ,
                iface=PROPERTIES,
                signal="PropertiesChanged",
                signal_fired=self._properties_changed,
            )
            objects = bus.get(BLUEZ, "/")[OBJECT_MANAGER].GetManagedObjects()
            adapters = sorted(path for path, ifaces in objects.items() if ADAPTER in ifaces)
            if not adapters:
                raise BluetoothError("bluetooth", "BlueZ has no adapter")
            self.adapter_path = adapters[0]
            adapter = bus.get(BLUEZ, self.adapter_path)[ADAPTER]
            if not adapter.Powered:
                adapter.Powered = True
            for path, interfaces in objects.items():
                if DEVICE in interfaces:
                    self._remember(path, dict(interfaces[DEVICE]))
            known = [(device_from(k.properties), k.path) for k in self._known.values()]
        except BluetoothError as err:
            _settle(loop, ready, error=err)
            return
        except Exception as exc:  # GLib.Error: no bus, BlueZ not running, ...
            error = BluetoothError("bluetooth", f"cannot reach BlueZ: {_dbus_message(exc)}")
            _settle(loop, ready, error=error)
            return
        self._glib, self._context = glib, context
        self._bus, self._glib_loop = bus, glib_loop
        _settle(loop, ready, result=known)
        try:
            glib_loop.run()
        finally:
            self._bus = None
            with contextlib.suppress(Exception):
                bus.con.close_sync(None)
            context.pop_thread_default()

    def _remember(self, path: str, properties: dict[str, Any]) -> BluetoothDevice | None:
        if self.adapter_path is None or not path.startswith(self.adapter_path + "/"):
            return None  # another adapter's device
        address = str(properties.get("Address", "")).upper()
        if not address:
            return None
        known = self._known.get(address)
        if known is None:
            self._known[address] = known = _Known(path, {})
        known.properties.update(properties)
        return device_from(known.properties)

    def _object_manager_signal(
        self, sender: str, path: str, iface: str, signal: str, params: Any
    ) -> None:
        if signal == "InterfacesAdded":
            object_path, interfaces = params
            if DEVICE in interfaces:
                device = self._remember(object_path, dict(interfaces[DEVICE]))
                if device is not None:
                    self._deliver(self._changed, (device, object_path))
        elif signal == "InterfacesRemoved":
            object_path, interfaces = params
            if DEVICE in interfaces:
                for address, known in list(self._known.items()):
                    if known.path == object_path:
                        del self._known[address]
                        self._deliver(self._forget, address)

    def _properties_changed(
        self, sender: str, path: str, iface: str, signal: str, params: Any
    ) -> None:
        interface, changed, _invalidated = params
        if interface != DEVICE:
            return
        for known in self._known.values():
            if known.path == path:
                known.properties.update(changed)
                self._deliver(self._changed, (device_from(known.properties), path))
                return

    def _deliver(self, function: Callable[[Any], None], value: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(function, value)


def _quit(glib_loop: Any) -> bool:
    glib_loop.quit()
    return False  # once


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[list[tuple[BluetoothDevice, str]]],
    *,
    result: list[tuple[BluetoothDevice, str]] | None = None,
    error: BaseException | None = None,
) -> None:
    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)


def _dbus_message(exc: Exception) -> str:
    """GLib.Error messages carry the D-Bus error name: keep its readable part."""
    text = str(getattr(exc, "message", "") or exc)
    return text.removeprefix("GDBus.Error:")


def check_bluez(address: str) -> None:
    """Raise BluetoothError unless BlueZ runs on the bus at ``address`` (one quick call)."""
    pydbus, _ = _import_glib()
    try:
        bus = pydbus.connect(address)
    except Exception as exc:
        raise BluetoothError("bluetooth", f"no system bus: {_dbus_message(exc)}") from exc
    try:
        if not bus.dbus.NameHasOwner(BLUEZ):
            raise BluetoothError("bluetooth", "BlueZ (bluetoothd) is not running")
    except BluetoothError:
        raise
    except Exception as exc:
        raise BluetoothError("bluetooth", f"cannot ask the bus: {_dbus_message(exc)}") from exc
    finally:
        with contextlib.suppress(Exception):
            bus.con.close_sync(None)


def create(config: HalConfig, kit: KitIdentity) -> BluezBluetooth:
    """A BlueZ manager on the system bus. BlueZ must be running: otherwise this is a
    start-up error naming Bluetooth (disable it in config on a kit without)."""
    address = system_bus_address()
    check_bluez(address)
    return BluezBluetooth(address)
