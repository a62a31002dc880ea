"""A call on the virtual kit, driven through its REST API and its devices."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.vm.machine import VirtualKit, VmError

SIM = "/sys/devices/platform/gpio-sim.0/gpiochip0"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    """``check()`` until it returns something true; generous, the guest is emulated."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise VmError(f"timed out waiting for {what}")
        time.sleep(0.5)


def session(vm: VirtualKit) -> dict[str, Any]:
    view: dict[str, Any] = vm.api_json("GET", "/api/v1/session")
    return view


def start_alone(vm: VirtualKit, session_id: str) -> dict[str, Any]:
    """The kit joins a session of its own: active, alone (its self-view on screen)."""
    vm.api_json("PUT", "/api/v1/session", {"session_id": session_id})
    view: dict[str, Any] = wait_until(
        "the session to be active", lambda: (v := session(vm))["state"] == "active" and v
    )
    return view


def end(vm: VirtualKit) -> None:
    answer = "(no DELETE: it was idle)"
    if session(vm)["state"] != "idle":
        status, body, _ = vm.api("DELETE", "/api/v1/session")
        answer = f"DELETE /api/v1/session: {status} {body.decode(errors='replace')[:500]}"
    try:
        wait_until("the session to end", lambda: session(vm)["state"] == "idle")
    except VmError as err:
        raise VmError(
            f"{err}\n{answer}\nnow: {session(vm)}\njournal:\n{vm.journal(lines=150)}"
        ) from err


def gpio_pull(vm: VirtualKit, line: int, pull: str) -> None:
    vm.run(f"echo {pull} > {SIM}/sim_gpio{line}/pull")


def gpio_value(vm: VirtualKit, line: int) -> int:
    return int(vm.run(f"cat {SIM}/sim_gpio{line}/value").out)


def press(vm: VirtualKit, line: int) -> None:
    """A button wired to ground with the pin's pull-up: pressing pulls the line down. Held
    past the debounce time (guest commands take far longer than 30 ms)."""
    gpio_pull(vm, line, "pull-down")
    gpio_pull(vm, line, "pull-up")
