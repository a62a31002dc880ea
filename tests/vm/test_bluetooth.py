"""A Bluetooth headset on the virtual kit's system D-Bus. The VM has no radio, so BlueZ's
name on the bus is taken by python-dbusmock's ``bluez5`` template (copied in from the test's
own environment); the kit talks to it with its real driver (pydbus over GLib) from inside
the shipped unit's sandbox and as its own user, through the bus policy Debian's bluez
installs. A headset that connects adds the BLUETOOTH route; when it leaves, the route goes."""

from __future__ import annotations

import io
import shlex
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dbusmock
import pytest

from tests.vm.machine import VirtualKit
from tests.vm.session import end, wait_until

HEADSET = "00:11:22:33:44:55"
HEADSET_UUIDS = [
    "0000110b-0000-1000-8000-00805f9b34fb",  # A2DP sink
    "0000111e-0000-1000-8000-00805f9b34fb",  # HFP hands-free
]
PY = "/run/callbox-vm/py"
CONFIG = "/etc/callbox/callbox.toml"
DISABLED = '[hal.bluetooth]\nbackend = "disabled"'
REAL = '[hal.bluetooth]\nbackend = "real"'


def busctl(vm: VirtualKit, path: str, interface: str, method: str, *args: object) -> str:
    words = " ".join(shlex.quote(str(a)) for a in args)
    return vm.run(f"busctl --system call org.bluez {path} {interface} {method} {words}").out


def mock(vm: VirtualKit, method: str, signature: str, *args: object) -> str:
    return busctl(vm, "/org/bluez", "org.bluez.Mock", method, signature, *args)


def dbusmock_tarball() -> bytes:
    package = Path(dbusmock.__file__).parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(
            package, arcname="dbusmock", filter=lambda t: None if "__pycache__" in t.name else t
        )
    return buffer.getvalue()


def restart_kit(vm: VirtualKit) -> None:
    vm.run("systemctl restart callbox.service", timeout=300)
    vm.wait_for_unit()


def set_bluetooth(vm: VirtualKit, backend: str) -> None:
    old, new = (DISABLED, REAL) if backend == "real" else (REAL, DISABLED)
    text = vm.run(f"cat {CONFIG}").out
    assert old in text, text
    # Written in place: the file keeps its owner and mode (the kit's user reads it).
    vm.run(f"cat > {CONFIG}", stdin=text.replace(old, new).encode())


@pytest.fixture
def bluez(vm: VirtualKit) -> Iterator[None]:
    """The mock BlueZ on the system bus with one adapter, and the kit using Bluetooth."""
    end(vm)
    vm.run(f"mkdir -p {PY} && tar -xz -C {PY}", stdin=dbusmock_tarball())
    vm.run("systemctl stop bluetooth.service", check=False)
    vm.run(
        f"systemd-run --unit vm-bluez --setenv PYTHONPATH={PY} "
        "python3 -m dbusmock --system --template bluez5"
    )
    try:
        wait_until(
            "the mock BlueZ on the bus",
            lambda: vm.run("busctl --system status org.bluez", check=False).exitcode == 0,
            120,
        )
    except Exception as error:
        raise AssertionError(f"{error}; its journal:\n{vm.journal('vm-bluez')}") from error
    mock(vm, "AddAdapter", "ss", "hci0", "callbox-vm")
    set_bluetooth(vm, "real")
    try:
        restart_kit(vm)
        yield
    finally:
        set_bluetooth(vm, "disabled")
        vm.run("systemctl stop vm-bluez", check=False)
        restart_kit(vm)


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
    device = "/org/bluez/hci0/dev_" + HEADSET.replace(":", "_")
    busctl(
        vm,
        device,
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
