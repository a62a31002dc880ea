"""Headphones plugged into the jack (a uinput switch device reporting SW_HEADPHONE_INSERT,
as a sound card's jack detection does) take the call's audio; unplugged, it goes back."""

from __future__ import annotations

from tests.vm.machine import VirtualKit
from tests.vm.session import end, session, start_alone, wait_until


def jack(vm: VirtualKit, plugged: bool) -> None:
    vm.run(f"echo {int(plugged)} > /run/callbox-vm/jack")


def test_headphones_plugged_take_the_call_audio(vm: VirtualKit) -> None:
    end(vm)
    jack(vm, False)
    view = start_alone(vm, "vm-headphones")
    before = view["audio_mode"]
    assert before is not None and before.upper() != "HEADPHONES", view
    assert all(mode.upper() != "HEADPHONES" for mode in view["audio_modes"]), view

    jack(vm, True)
    view = wait_until(
        "the headphone route",
        lambda: (v := session(vm))["audio_mode"].upper() == "HEADPHONES" and v,
    )
    assert "HEADPHONES" in [mode.upper() for mode in view["audio_modes"]]
    assert view["local"]["audio_mode"].upper() == "HEADPHONES"

    jack(vm, False)
    wait_until("the route back", lambda: session(vm)["audio_mode"] == before)
    end(vm)
