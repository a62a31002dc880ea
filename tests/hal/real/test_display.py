"""The real display: DRM/KMS against a pykms fake checked against the real kms++ build
(tests/hal/real/kms.py: the real module's own request helpers, blobs destroyed when Python
drops them, framebuffers in shared memory), and the framebuffer fallback against a regular
file of the right size."""

from __future__ import annotations

import functools
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_mock import MockerFixture

from hal.config import HalConfig
from hal.display.base import Display, DisplayError
from hal.display.fbdev import FbGeometry, FramebufferDisplay, parse_screeninfo, to_pixels
from hal.display.real import MODESET_ATTEMPTS, KmsDisplay, create, fit
from hal.errors import DeviceGone, HardwareError
from hal.kit import KitIdentity
from tests.hal.real.kms import KmsWorld, conform, make_pykms, real_pykms

KIT = KitIdentity("room-a", "Room A")


def picture(width: int, height: int, seed: int = 1) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def bgrx(frame: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.zeros((*frame.shape[:2], 4), np.uint8)
    out[:, :, 0], out[:, :, 1], out[:, :, 2] = frame[:, :, 2], frame[:, :, 1], frame[:, :, 0]
    return out


# --- the framebuffer --------------------------------------------------------------------


def fb_file(tmp_path: Path, width: int, height: int) -> Path:
    path = tmp_path / "fb0"
    path.write_bytes(bytes(width * height * 4))
    return path


async def test_the_framebuffer_gets_every_pixel(tmp_path: Path) -> None:
    path = fb_file(tmp_path, 320, 240)
    display = FramebufferDisplay(str(path), width=320, height=240, allow_regular_file=True)
    assert isinstance(display, Display)
    assert display.size == (320, 240)
    assert display.connected
    with pytest.raises(DisplayError, match="not open"):
        await display.show(picture(320, 240))
    await display.open()
    for seed in (1, 2):
        frame = picture(320, 240, seed)
        await display.show(frame)
        written = np.frombuffer(path.read_bytes(), np.uint8).reshape(240, 320, 4)
        assert np.array_equal(written, bgrx(frame))
    with pytest.raises(ValueError, match="320x240"):
        await display.show(picture(640, 480))
    await display.close()
    await display.close()
    assert display.frames_shown == 2


def test_a_framebuffer_too_small_or_missing_is_refused(tmp_path: Path) -> None:
    path = fb_file(tmp_path, 100, 100)
    with pytest.raises(DisplayError, match="needs 307200"):
        FramebufferDisplay(str(path), width=320, height=240, allow_regular_file=True).probe()
    with pytest.raises(DisplayError, match="cannot open"):
        FramebufferDisplay(
            str(tmp_path / "fb9"), width=320, height=240, allow_regular_file=True
        ).probe()


async def test_a_regular_file_or_another_device_is_no_framebuffer(tmp_path: Path) -> None:
    """A config naming a file must not get it overwritten through a shared mapping."""
    path = fb_file(tmp_path, 320, 240)
    path.write_bytes(b"precious" * (320 * 240 // 2))
    before = path.read_bytes()
    for target in (str(path), "/dev/null"):
        display = FramebufferDisplay(target, width=320, height=240)
        with pytest.raises(DisplayError, match="no framebuffer"):
            display.probe()
        with pytest.raises(DisplayError, match="no framebuffer"):
            await display.open()
    assert path.read_bytes() == before


def test_framebuffer_pixel_layouts() -> None:
    frame = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], np.uint8)
    rgb565 = to_pixels(frame, FbGeometry(4, 1, 16, 8)).view("<u2")[0]
    assert list(rgb565) == [0xF800, 0x07E0, 0x001F, (200 >> 3) << 11 | (100 >> 2) << 5 | 50 >> 3]
    xbgr = to_pixels(frame, FbGeometry(4, 1, 32, 20, 0, 8, 16)).reshape(-1)[:16]
    assert list(xbgr[12:15]) == [200, 100, 50]  # red first in memory when its offset is 0
    bgr24 = to_pixels(frame, FbGeometry(4, 1, 24, 12)).reshape(-1)
    assert list(bgr24[9:12]) == [50, 100, 200]
    with pytest.raises(DisplayError, match="8 bits"):
        to_pixels(frame, FbGeometry(4, 1, 8, 4))


def test_screeninfo_from_the_kernel_structs() -> None:
    var = struct.pack(
        "=8I12I", 1920, 1080, 1920, 2160, 0, 0, 32, 0, 16, 8, 0, 8, 8, 0, 0, 8, 0, 24, 8, 0
    )
    var += bytes(160 - len(var))
    fix = struct.pack("@16sL4I3HI", b"vc4drmfb", 0, 1920 * 4 * 2160, 0, 0, 2, 1, 1, 0, 7680)
    fix += bytes(80 - len(fix))
    assert parse_screeninfo(var, fix) == FbGeometry(1920, 1080, 32, 7680, 16, 8, 0)


# --- KMS (pykms faked over a made-up DRM device, checked against the real module) -------


async def test_kms_sets_the_mode_once_and_flips_between_two_buffers(pykms: Any) -> None:
    world = pykms.world
    display = KmsDisplay(pykms, 1280, 720)
    await display.open()
    assert world.reserved_connector == [""]
    assert world.generic_plane_formats == [pykms.PixelFormat.XRGB8888]
    assert display.mode == (1920, 1200)
    first, second = picture(1280, 720, 1), picture(1280, 720, 2)
    await display.show(first)
    await display.show(second)
    assert world.refused == []
    front, back = world.buffers
    assert np.array_equal(front._pixels()[:, :, :3], bgrx(first)[:, :, :3])
    assert np.array_equal(back._pixels()[:, :, :3], bgrx(second)[:, :, :3])
    # The mode is set with the first frame only; each commit shows the buffer just drawn,
    # 1280x720 on a 1920x1200 screen: scaled to the width, letterboxed.
    assert [c["allow_modeset"] for c in world.commits] == [True, False]
    for commit, buffer in zip(world.commits, (front, back), strict=True):
        props = {name: value for _, name, value in commit["props"]}
        assert props["FB_ID"] == buffer.id
        assert (props["SRC_W"], props["SRC_H"]) == (1280 << 16, 720 << 16)
        assert (props["CRTC_X"], props["CRTC_Y"], props["CRTC_W"], props["CRTC_H"]) == (
            0, 60, 1920, 1080,
        )  # fmt: skip
    modeset = {name: value for _, name, value in world.commits[0]["props"]}
    assert modeset["ACTIVE"] == 1 and modeset["MODE_ID"] in world.blobs
    await display.close()
    assert not display.is_open
    assert not world.blobs  # the mode's blob is destroyed with the display


async def test_kms_keeps_the_mode_blob_alive_until_the_commit(pykms: Any) -> None:
    """kms++ destroys a blob when Python drops it; a commit naming it is refused and the
    screen stays black. The blob must outlive the request."""
    world = pykms.world
    display = KmsDisplay(pykms, 640, 480)
    await display.open()
    await display.show(picture(640, 480))
    assert world.refused == []
    assert len(world.commits) == 1 and world.commits[0]["allow_modeset"]


async def test_a_mode_kms_keeps_refusing_falls_back_to_the_framebuffer(
    pykms: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = pykms.world
    path = fb_file(tmp_path, 640, 480)
    display = KmsDisplay(
        pykms,
        640,
        480,
        fallback=lambda: FramebufferDisplay(
            str(path), width=640, height=480, allow_regular_file=True
        ),
    )
    await display.open()
    world.refuse_commits = 100
    frame = picture(640, 480, 3)
    for _ in range(MODESET_ATTEMPTS - 1):  # the compositor retries a failed frame
        with pytest.raises(DisplayError, match="KMS commit failed"):
            await display.show(frame)
    await display.show(frame)  # the last attempt fails over
    assert isinstance(display.fallback, FramebufferDisplay)
    written = np.frombuffer(path.read_bytes(), np.uint8).reshape(480, 640, 4)
    assert np.array_equal(written[:, :, :3], bgrx(frame)[:, :, :3])
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and "framebuffer instead" in errors[-1].getMessage()
    assert display.is_open and display.connected
    await display.show(picture(640, 480, 4))
    assert display.frames_shown == 2
    await display.close()
    assert not world.blobs


async def test_a_mode_kms_keeps_refusing_without_a_framebuffer_is_a_loud_error(
    pykms: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pykms.world.refuse_commits = 100
    display = KmsDisplay(
        pykms,
        640,
        480,
        fallback=lambda: FramebufferDisplay(str(tmp_path / "fb9"), width=640, height=480),
    )
    await display.open()
    for _ in range(MODESET_ATTEMPTS - 1):
        with pytest.raises(DisplayError, match="KMS commit failed"):
            await display.show(picture(640, 480))
    with pytest.raises(DisplayError, match=r"could not set the screen's mode 3 times.*fb9"):
        await display.show(picture(640, 480))
    assert any(r.levelname == "ERROR" for r in caplog.records)


async def test_kms_reports_an_unplugged_screen(pykms: Any) -> None:
    display = KmsDisplay(pykms, 640, 480)
    await display.open()
    pykms.world.refuse_commits = 1
    pykms.world.connected = False
    with pytest.raises(DeviceGone, match="unplugged"):
        await display.show(picture(640, 480))
    assert not display.connected
    await display.close()
    with pytest.raises(DeviceGone, match="no screen"):
        await display.open()


async def test_kms_refusals(pykms: Any) -> None:
    display = KmsDisplay(pykms, 640, 480)
    with pytest.raises(DisplayError, match="not open"):
        await display.show(picture(640, 480))
    await display.open()
    with pytest.raises(ValueError, match="640x480"):
        await display.show(picture(320, 240))
    await display.close()
    pykms.world.has_atomic = False
    with pytest.raises(DisplayError, match="atomic"):
        await display.open()


def test_the_pykms_fake_offers_only_what_kms_plus_plus_binds() -> None:
    real = real_pykms()
    assert "Blob" in dir(real) and "to_blob" in dir(real.Videomode)
    fake = make_pykms(KmsWorld())
    for name in dir(fake):
        if not name.startswith("_") and name != "world":
            assert hasattr(real, name), name
    card = fake.Card()
    card.no_such_call = lambda: None
    with pytest.raises(AssertionError, match=r"pykms.Card has no \['no_such_call'\]"):
        conform(card, "Card")


async def test_create_prefers_kms_then_the_framebuffer(
    pykms: Any, tmp_path: Path, mocker: MockerFixture
) -> None:
    config = HalConfig.model_validate(
        {"display": {"width": 320, "height": 240, "framebuffer": str(fb_file(tmp_path, 320, 240))}}
    )
    pykms.world.card_error = OSError("No such file or directory: /dev/dri/card0")
    with pytest.raises(HardwareError, match="not a character device"):
        create(config, KIT)  # the framebuffer named is a regular file: refused
    pykms.world.card_error = None
    # The rest of this test stands a regular file in for the framebuffer device.
    mocker.patch(
        "hal.display.real.FramebufferDisplay",
        functools.partial(FramebufferDisplay, allow_regular_file=True),
    )
    kms = create(config, KIT)
    assert isinstance(kms, KmsDisplay)
    pykms.world.refuse_commits = 100  # KMS that cannot set the mode: the framebuffer
    await kms.open()
    for _ in range(MODESET_ATTEMPTS - 1):
        with pytest.raises(DisplayError):
            await kms.show(picture(320, 240))
    await kms.show(picture(320, 240))
    assert isinstance(kms.fallback, FramebufferDisplay)
    await kms.close()
    pykms.world.card_error = OSError("No such file or directory: /dev/dri/card0")
    fallback = create(config, KIT)
    assert isinstance(fallback, FramebufferDisplay)
    mocker.patch.dict(sys.modules, {"pykms": None})  # not installed at all
    assert isinstance(create(config, KIT), FramebufferDisplay)
    missing = config.model_copy(
        update={"display": config.display.model_copy(update={"framebuffer": str(tmp_path / "fb1")})}
    )
    with pytest.raises(HardwareError) as raised:
        create(missing, KIT)
    assert raised.value.device == "display"
    assert "no KMS" in str(raised.value)
    assert "fb1" in str(raised.value)


def test_fit() -> None:
    assert fit(1920, 1080, 1920, 1080) == (0, 0, 1920, 1080)
    assert fit(640, 480, 1920, 1080) == (240, 0, 1440, 1080)
    assert fit(1280, 720, 1920, 1200) == (0, 60, 1920, 1080)
