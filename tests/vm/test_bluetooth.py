"""A Bluetooth headset on the virtual kit's system D-Bus. The VM has no radio, so BlueZ's
name on the bus is taken by python-dbusmock's ``bluez5`` template with one adapter
(vm-bluez.service in the image, started before callbox); the kit talks to it with its real
driver (pydbus over GLib) from inside the shipped unit's sandbox and as its own user,
through the bus policy Debian's bluez installs. A headset that connects adds the BLUETOOTH
route; when it leaves, the route goes."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from tests.vm.machine import VirtualKit
from tests.vm.session import end, wait_until

HEADSET = "00:11:22:33:44:55"
HEADSET_PATH = "/org/bluez/hci0/dev_" + HEADSET.replace(":", "_")
HEADSET_UUIDS = [
    "0000110b-0000-1000-8000-00805f9b34fb",  # A2DP sink
    "0000111e-0000-1000-8000-00805f9b34fb",  # HFP hands-free
]


def busctl(vm: VirtualKit, path: str, interface: str, method: str, *args: object) -> str:
    words = " ".join(shlex.quote(str(a)) for a in args)
    return vm.run(f"busctl --system call org.bluez {path} {interface} {method} {words}").out


def mock(vm: VirtualKit, method: str, signature: str, *args: object) -> str:
    return busctl(vm, "/org/bluez", "org.bluez.Mock", method, signature, *args)


@pytest.fixture
def bluez(vm: VirtualKit) -> Iterator[None]:
    """The mock BlueZ's adapter, and no headset left on it afterwards."""
    end(vm)
    status = vm.run("systemctl is-active vm-bluez.service", check=False).out.strip()
    assert status == "active", f"{status}; its journal:\n{vm.journal('vm-bluez.service')}"
    try:
        yield
    finally:
        vm.run(
            f"busctl --system call org.bluez /org/bluez/hci0 org.bluez.Adapter1 RemoveDevice "
            f"o {HEADSET_PATH}",
            check=False,
        )


def routes(vm: VirtualKit) -> list[str]:
    answer: dict[str, Any] = vm.api_json("GET", "/api/v1/devices/audio-routes")
    return [str(mode).upper() for mode in answer["available"]]


def headset_view(vm: VirtualKit) -> dict[str, Any] | None:
    listed = vm.api_json("GET", "/api/v1/devices/bluetooth")
    assert listed["available"] is True, listed
    found = [d for d in listed["devices"] if d["address"] == HEADSET]
    return found[0] if found else None


def test_a_headset_that_connects_adds_the_bluetooth_route_and_leaving_removes_it(
    vm: VirtualKit, bluez: None
) -> None:
    health = vm.api_json("GET", "/api/v1/health")
    assert health["hardware"]["bluetooth"] == "real", health
    assert "BLUETOOTH" not in routes(vm)
    mock(vm, "AddDevice", "sss", "hci0", HEADSET, "Headset")
    mock(vm, "PairDevice", "ss", "hci0", HEADSET)
    busctl(
        vm,
        HEADSET_PATH,
        "org.freedesktop.DBus.Mock",
        "UpdateProperties",
        "sa{sv}",
        "org.bluez.Device1",
        1,
        "UUIDs",
        "as",
        len(HEADSET_UUIDS),
        *HEADSET_UUIDS,
    )
    wait_until("the paired headset listed", lambda: (d := headset_view(vm)) and d["audio"])

    mock(vm, "ConnectDevice", "ss", "hci0", HEADSET)
    wait_until("the BLUETOOTH route", lambda: "BLUETOOTH" in routes(vm))
    view = headset_view(vm)
    assert view is not None and view["connected"] and view["paired"], view

    mock(vm, "DisconnectDevice", "ss", "hci0", HEADSET)
    wait_until("the BLUETOOTH route gone", lambda: "BLUETOOTH" not in routes(vm))
    view = headset_view(vm)
    assert view is not None and not view["connected"], view
