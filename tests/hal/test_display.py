"""Fake HDMI screen."""

from __future__ import annotations

import numpy as np
import pytest

from hal.config import HalConfig
from hal.display.base import Display, DisplayError
from hal.display.fake import FakeDisplay, create
from hal.errors import DeviceGone
from hal.kit import KitIdentity


async def test_keeps_a_copy_of_the_last_frame_and_counts() -> None:
    display = create(
        HalConfig.model_validate({"display": {"width": 640, "height": 360}}), KitIdentity("k", "K")
    )
    assert isinstance(display, Display)
    assert display.size == (640, 360)
    await display.open()
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[10, 20] = (1, 2, 3)
    await display.show(frame)
    frame[:] = 255  # the compositor reuses its buffer
    await display.show(np.full((360, 640, 3), 7, np.uint8))
    assert display.frames_shown == 2
    assert display.last_frame is not None
    assert display.last_frame[0, 0, 0] == 7


async def test_unplug_and_replug() -> None:
    display = FakeDisplay(320, 240)
    await display.open()
    frame = np.zeros((240, 320, 3), np.uint8)
    display.unplug()
    assert not display.connected
    with pytest.raises(DeviceGone):
        await display.show(frame)
    display.replug()
    await display.show(frame)
    assert display.frames_shown == 1


async def test_refuses_wrong_frames_and_showing_before_open() -> None:
    display = FakeDisplay(320, 240)
    with pytest.raises(DisplayError):
        await display.show(np.zeros((240, 320, 3), np.uint8))
    await display.open()
    with pytest.raises(ValueError, match="320x240"):
        await display.show(np.zeros((240, 321, 3), np.uint8))
    await display.close()
    await display.close()
    assert (display.opens, display.closes) == (1, 1)
