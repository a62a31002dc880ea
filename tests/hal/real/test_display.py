"""The real display: DRM/KMS against a mocked pykms whose framebuffers are real shared
memory, and the framebuffer fallback against a regular file of the right size."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import numpy as np
import pytest
from pytest_mock import MockerFixture

from hal.config import HalConfig
from hal.display.base import Display, DisplayError
from hal.display.fbdev import FbGeometry, FramebufferDisplay, parse_screeninfo, to_pixels
from hal.display.real import KmsDisplay, create, fit
from hal.errors import DeviceGone, HardwareError
from hal.kit import KitIdentity

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
    display = FramebufferDisplay(str(path), width=320, height=240)
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
        FramebufferDisplay(str(path), width=320, height=240).probe()
    with pytest.raises(DisplayError, match="cannot open"):
        FramebufferDisplay(str(tmp_path / "fb9"), width=320, height=240).probe()


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


# --- KMS (pykms mocked; its framebuffers are shared memory the test reads back) ---------


async def test_kms_sets_the_mode_once_and_flips_between_two_buffers(pykms: MagicMock) -> None:
    display = KmsDisplay(pykms, 1280, 720)
    await display.open()
    resources = pykms.ResourceManager.return_value
    resources.reserve_connector.assert_called_once_with("")
    crtc = resources.reserve_crtc.return_value
    plane = resources.reserve_generic_plane.return_value
    resources.reserve_generic_plane.assert_called_once_with(crtc, pykms.PixelFormat.XRGB8888)
    assert display.mode == (1920, 1200)
    first, second = picture(1280, 720, 1), picture(1280, 720, 2)
    await display.show(first)
    await display.show(second)
    front, back = pykms.buffers
    assert np.array_equal(front.pixels()[:, :, :3], bgrx(first)[:, :, :3])
    assert np.array_equal(back.pixels()[:, :, :3], bgrx(second)[:, :, :3])
    requests = [c for c in pykms.mock_calls if c[0] == "AtomicReq().add_plane"]
    # 1280x720 on a 1920x1200 screen: scaled to the width, letterboxed.
    assert [c.args for c in requests] == [
        (plane, front, crtc, (0, 0, 1280, 720), (0, 60, 1920, 1080)),
        (plane, back, crtc, (0, 0, 1280, 720), (0, 60, 1920, 1080)),
    ]
    request = pykms.AtomicReq.return_value
    assert request.add_connector.call_count == 1  # the mode is set with the first frame only
    assert request.add_crtc.call_count == 1
    commits = [c.kwargs["allow_modeset"] for c in request.commit_sync.call_args_list]
    assert commits == [True, False]
    await display.close()
    assert not display.is_open


class _Blob:
    """kms++'s Blob: freeing it destroys the property blob, and its id with it."""

    live: set[int] = set()
    _next = 100

    def __init__(self) -> None:
        _Blob._next += 1
        self.id = _Blob._next
        _Blob.live.add(self.id)

    def __del__(self) -> None:
        _Blob.live.discard(self.id)


class _AtomicReq:
    """kms++'s AtomicReq as it behaves: it keeps property values (ids), not the objects;
    the kernel refuses a MODE_ID whose blob was destroyed (EINVAL)."""

    def __init__(self, card: Any) -> None:
        self.mode_id: int | None = None

    def add_connector(self, connector: Any, crtc: Any) -> None:
        pass

    def add_crtc(self, crtc: Any, blob: Any) -> None:
        self.mode_id = blob.id

    def add_plane(self, *args: Any) -> None:
        pass

    def commit_sync(self, allow_modeset: bool = False) -> int:
        return -22 if self.mode_id is not None and self.mode_id not in _Blob.live else 0


async def test_kms_keeps_the_mode_blob_alive_until_the_commit(pykms: MagicMock) -> None:
    # Found on virtio-gpu (tests/vm): a blob made inline and freed before the commit.
    mode = pykms.ResourceManager.return_value.reserve_connector.return_value.get_default_mode()
    mode.to_blob.side_effect = lambda card: _Blob()
    pykms.AtomicReq.side_effect = _AtomicReq
    display = KmsDisplay(pykms, 1920, 1200)
    await display.open()
    await display.show(picture(1920, 1200, 1))  # the mode set: no DisplayError
    await display.show(picture(1920, 1200, 2))
    assert display.frames_shown == 2
    await display.close()


async def test_kms_reports_an_unplugged_screen(pykms: MagicMock) -> None:
    display = KmsDisplay(pykms, 640, 480)
    await display.open()
    connector = pykms.ResourceManager.return_value.reserve_connector.return_value
    pykms.AtomicReq.return_value.commit_sync.return_value = -22
    connector.connected.return_value = False
    with pytest.raises(DeviceGone, match="unplugged"):
        await display.show(picture(640, 480))
    assert not display.connected
    await display.close()
    with pytest.raises(DeviceGone, match="no screen"):
        await display.open()


async def test_kms_refusals(pykms: MagicMock) -> None:
    display = KmsDisplay(pykms, 640, 480)
    with pytest.raises(DisplayError, match="not open"):
        await display.show(picture(640, 480))
    await display.open()
    with pytest.raises(ValueError, match="640x480"):
        await display.show(picture(320, 240))
    await display.close()
    pykms.Card.return_value.has_atomic = False
    with pytest.raises(DisplayError, match="atomic"):
        await display.open()


def test_create_prefers_kms_then_the_framebuffer(
    pykms: MagicMock, tmp_path: Path, mocker: MockerFixture
) -> None:
    config = HalConfig.model_validate(
        {"display": {"width": 320, "height": 240, "framebuffer": str(fb_file(tmp_path, 320, 240))}}
    )
    assert isinstance(create(config, KIT), KmsDisplay)
    pykms.Card.side_effect = OSError("No such file or directory: /dev/dri/card0")
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
