"""The virtual kit boots to READY=1 with every device real."""

from __future__ import annotations

from tests.vm.machine import VirtualKit
from tests.vm.session import wait_until


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


def test_the_idle_kit_trims_its_heap_under_the_services_sandbox(vm: VirtualKit) -> None:
    # appliance.memory calls glibc's malloc_trim once the kit has sat idle; the line is
    # logged only once the call returned memory, so the syscall filter let it through.
    main_pid = vm.run("systemctl show -P MainPID callbox.service").out.strip()
    line = wait_until(
        "the journal's 'heap trimmed' line",
        lambda: [
            text
            for text in vm.journal(lines=2000).splitlines()
            if "idle: heap trimmed, resident memory" in text
        ],
        timeout=300,
    )
    assert line
    assert vm.run("systemctl show -P MainPID callbox.service").out.strip() == main_pid
