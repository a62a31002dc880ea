"""The virtual kit boots to READY=1 with every device real."""

from __future__ import annotations

from tests.vm.machine import VirtualKit


def test_boots_to_ready_with_every_device_real(vm: VirtualKit) -> None:
    # callbox.service is Type=notify: "active" means the daemon sent READY=1.
    assert vm.run("systemctl show -P Type callbox.service").out.strip() == "notify"
    assert vm.run("systemctl is-active callbox.service").out.strip() == "active"
    health = vm.api_json("GET", "/api/v1/health")
    assert health["ok"] is True
    assert health["hardware"] == {
        "camera": "real",
        "audio": "real",
        "buttons": "real",
        "display": "real",
        "input": "real",
        "bluetooth": "real",  # on the mock BlueZ: the VM has no radio
    }, health
    # The devices are the kernel's: the kit holds them open (the camera only in a call).
    opened = vm.run("pid=$(systemctl show -P MainPID callbox.service); ls -l /proc/$pid/fd").out
    for device in ("/dev/dri/card0", "/dev/gpiochip0", "/dev/input/event"):
        assert device in opened, f"the daemon does not hold {device} open:\n{opened}"
    assert health["session_server"]["connected"] is True
