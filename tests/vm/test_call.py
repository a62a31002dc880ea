"""A call between the virtual kit and a far kit (fake hardware, in the guest): the far
kit's tone through snd-aloop, measured by level and pitch; the far kit decodes vivid's
frames; the mute button on gpio-sim mutes the call for the far kit and lights the mute
LED."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hal.audio.pcm import dominant_frequency, rms_dbfs
from tests.vm import farkit
from tests.vm.machine import VirtualKit
from tests.vm.session import end, gpio_value, press, session, wait_until

SESSION = "vm-call"
MIC_TONE_HZ = 1000


def far_view_of_us(vm: VirtualKit, token: str) -> dict[str, Any] | None:
    view = farkit.api(vm, token, "GET", "/api/v1/session")
    for participant in view.get("participants", []):
        if participant["uid"] == vm.kit_config()["kit"]["uid"]:
            found: dict[str, Any] = participant
            return found
    return None


@pytest.fixture(scope="module")
def call(vm: VirtualKit) -> Iterator[str]:
    end(vm)
    token = farkit.start(vm)
    wait_until("the far kit", lambda: vm.run(
        f"systemctl is-active {farkit.UNIT}", check=False).out.strip() == "active", 600)
    vm.api_json("PUT", "/api/v1/session", {"session_id": SESSION})
    farkit.api(vm, token, "PUT", "/api/v1/session", {"session_id": SESSION})
    wait_until("two in the call", lambda: len(session(vm)["participants"]) == 2, 300)
    try:
        yield token
    finally:
        end(vm)
        vm.run(f"systemctl stop {farkit.UNIT}", check=False)


def test_the_far_kits_tone_plays_on_the_speaker(vm: VirtualKit, call: str) -> None:
    def heard() -> tuple[float, float] | None:
        pcm = farkit.record(vm, "plughw:Loopback,1,0")[24000:]  # the last second
        freq, level = dominant_frequency(pcm), rms_dbfs(pcm)
        return (freq, level) if abs(freq - farkit.TONE_HZ) < 15 and level > -40 else None

    freq, level = wait_until("the far kit's tone on the speaker", heard, 300)
    assert abs(freq - farkit.TONE_HZ) < 15 and level > -40


def test_vivids_frames_reach_the_far_kit(vm: VirtualKit, call: str) -> None:
    # vivid's frames, read by PyAV and sent, are decoded at the far end.
    wait_until(
        "video from us at the far kit",
        lambda: (us := far_view_of_us(vm, call)) is not None and us["media"] is not None,
        300,
    )
    first = far_view_of_us(vm, call)
    assert first is not None and first["media"] is not None
    wait_until(
        "vivid's frames at the far kit",
        lambda: (us := far_view_of_us(vm, call))
        and us["media"]["video_frames"] > first["media"]["video_frames"] + 5,
        300,
    )


def test_mute_button_mutes_us_at_the_far_kit_and_lights_the_led(
    vm: VirtualKit, call: str
) -> None:
    vm.run(
        "systemd-run --unit vm-mic-tone2 speaker-test -D plughw:Loopback,0,1 -t sine "
        f"-f {MIC_TONE_HZ} -r 48000 -c 1 -F S16_LE >/dev/null"
    )
    try:
        press(vm, 17)
        wait_until("the mute LED", lambda: gpio_value(vm, 23) == 1)
        wait_until("muted at the far kit",
                   lambda: (us := far_view_of_us(vm, call)) and us["audio_muted"], 120)
        wait_until(
            "silence at the far kit",
            lambda: (us := far_view_of_us(vm, call)) and us["media"]["audio_level_dbfs"] < -60,
            120,
        )
        press(vm, 17)
        wait_until("the mute LED off", lambda: gpio_value(vm, 23) == 0)
    finally:
        vm.run("systemctl stop vm-mic-tone2", check=False)
