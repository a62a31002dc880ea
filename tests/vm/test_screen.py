"""What the virtual HDMI screen shows (QEMU scans out virtio-gpu) is what the kit says it
shows (GET /api/v1/display.png): the real KMS driver puts the compositor's frames on
screen."""

from __future__ import annotations

import io
import time

import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.vm.machine import SCREEN, VirtualKit


def display_png(vm: VirtualKit) -> npt.NDArray[np.uint8]:
    status, body, kind = vm.api("GET", "/api/v1/display.png")
    assert status == 200, body[:300]
    assert kind == "image/png"
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def matching(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    """The share of pixels whose channels all differ by at most 12 levels."""
    close = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) <= 12
    return float(close.mean())


def test_screen_at_home_shows_display_png(vm: VirtualKit) -> None:
    # The kit draws a frame at the screen's size; QEMU's scan-out of virtio-gpu is that frame.
    best = 0.0
    for _ in range(5):  # the home screen may change (a clock) between two captures
        before = display_png(vm)
        shown = vm.screendump()
        after = display_png(vm)
        assert shown.shape == (SCREEN[1], SCREEN[0], 3)
        assert before.shape == shown.shape, (before.shape, shown.shape)
        best = max(best, matching(before, shown), matching(after, shown))
        if best > 0.99:
            break
        time.sleep(2)
    assert best > 0.99, f"only {best:.1%} of the screen matches display.png"
    # Not a blank screen: the home screen has content (more than one colour).
    assert len(np.unique(shown.reshape(-1, 3), axis=0)) > 8


BARS = {"yellow": (191, 191, 0), "cyan": (0, 191, 191), "magenta": (191, 0, 191)}


def bar_shares(screen: npt.NDArray[np.uint8]) -> dict[str, float]:
    """How much of the screen shows each of vivid's 75 % colour bars (to within 48 levels:
    the frame went through YUV and scaling)."""
    pixels = screen.astype(np.int16)
    return {
        name: float((np.abs(pixels - np.array(rgb)).max(axis=2) <= 48).mean())
        for name, rgb in BARS.items()
    }


def test_in_a_call_the_screen_shows_the_camera_and_display_png(vm: VirtualKit) -> None:
    from tests.vm.session import end, start_alone, wait_until

    end(vm)
    at_home = bar_shares(vm.screendump())
    start_alone(vm, "vm-screen")
    try:
        # The self view: vivid's frames, read through V4L2 by PyAV, composed, on KMS.
        wait_until(
            "the camera to be open",
            lambda: "/dev/video0" in vm.run(
                "ls -l /proc/$(systemctl show -P MainPID callbox.service)/fd"
            ).out,
        )
        shares = wait_until(
            "vivid's colour bars on the screen",
            lambda: (s := bar_shares(vm.screendump())) and min(s.values()) > 0.002 and s,
        )
        assert all(at_home[name] < shares[name] / 4 for name in BARS), (at_home, shares)
        best = 0.0
        for _ in range(5):
            shown = vm.screendump()
            best = max(best, matching(display_png(vm), shown))
            if best > 0.97:  # the self view moves on between the two captures
                break
        assert best > 0.97, f"only {best:.1%} of the screen matches display.png"
    finally:
        end(vm)
