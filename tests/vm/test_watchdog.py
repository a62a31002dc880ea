"""systemd supervises the daemon in the VM: a stuck daemon (SIGSTOP: no watchdog pings) is
killed and restarted, and so is one that crashes."""

from __future__ import annotations

import time

from tests.vm.machine import BOOT_TIMEOUT_S, VirtualKit, VmError


def main_pid(vm: VirtualKit) -> int:
    return int(vm.run("systemctl show -P MainPID callbox.service").out)


def restarts(vm: VirtualKit) -> int:
    return int(vm.run("systemctl show -P NRestarts callbox.service").out)


def wait_for_new_daemon(vm: VirtualKit, old_pid: int, old_restarts: int) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while restarts(vm) <= old_restarts or main_pid(vm) in (0, old_pid):
        if time.monotonic() > deadline:
            raise VmError(f"callbox was not restarted; its journal:\n{vm.journal()}")
        time.sleep(3)
    vm.wait_for_unit()
    assert vm.api_json("GET", "/api/v1/health")["ok"] is True


def test_a_stopped_daemon_is_killed_by_the_watchdog_and_restarted(vm: VirtualKit) -> None:
    pid, count = main_pid(vm), restarts(vm)
    since = vm.run("date +%s").out.strip()
    vm.run(f"kill -STOP {pid}")
    wait_for_new_daemon(vm, pid, count)
    journal = vm.run(
        f"journalctl -u callbox.service --since @{since} --no-pager -o cat", check=False
    ).out
    assert "Watchdog timeout" in journal, journal[-3000:]


def test_a_crashed_daemon_is_restarted(vm: VirtualKit) -> None:
    pid, count = main_pid(vm), restarts(vm)
    vm.run(f"kill -SEGV {pid}")
    wait_for_new_daemon(vm, pid, count)
