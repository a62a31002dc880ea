"""The self-test on the virtual kit's real devices. The VM has no room between its speaker
and its microphone, so the test makes one: alsaloop carries what the speaker's loopback
plays into the microphone's, and the self-test's chirp has to cross real ALSA devices, with
their own clocks and buffers, to be heard. Without it, the same check fails, as a kit whose
microphone hears nothing must."""

from __future__ import annotations

import json
from typing import Any

from tests.vm.machine import VirtualKit
from tests.vm.session import end

ROOM_UNIT = "vm-room"
# The speaker plays into hw:Loopback,0,0 and is heard on hw:Loopback,1,0; the microphone
# captures hw:Loopback,1,1, which is what hw:Loopback,0,1 plays.
ROOM = "alsaloop -C plughw:Loopback,1,0 -P plughw:Loopback,0,1 -r 48000 -c 1 -f S16_LE -t 40000"


def selftest(vm: VirtualKit) -> dict[str, Any]:
    status, body, _ = vm.api("POST", "/api/v1/selftest", timeout=180)
    assert status == 200, body[:500]
    report: dict[str, Any] = json.loads(body)
    return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["kind"]: check["status"] for check in report["checks"]}


def test_the_selftest_checks_every_real_device_and_hears_its_chirp_across_a_room(
    vm: VirtualKit,
) -> None:
    end(vm)
    alone = selftest(vm)
    assert statuses(alone)["audio"] == "failed", alone  # nothing carries the chirp back
    vm.run(f"systemd-run --unit {ROOM_UNIT} {ROOM}")
    try:
        report = selftest(vm)
    finally:
        vm.run(f"systemctl stop {ROOM_UNIT}", check=False)
    assert statuses(report) == {
        "camera": "ok",
        "audio": "ok",
        "buttons": "ok",
        "leds": "ok",
        "screen": "ok",
        "bluetooth": "ok",  # the mock BlueZ's adapter, powered
    }, report
    assert report["ok"] is True
    health = vm.api_json("GET", "/api/v1/health")
    assert health["selftest"]["started_at"] == report["started_at"]
