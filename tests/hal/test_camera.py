"""Fake cameras: pacing, identity, scripting, records."""

from __future__ import annotations

import asyncio

import pytest

from hal.camera.base import Camera, CameraError, VideoFormat
from hal.camera.fake import FakeCamera, create
from hal.camera.pattern import colour_distance, dominant_colour, kit_colour, read_pattern
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity

KIT = KitIdentity("room-a", "Room A")


def cameras(**camera: object) -> list[FakeCamera]:
    return create(HalConfig.model_validate({"camera": camera}), KIT)


async def test_create_gives_two_cameras_telling_themselves_apart() -> None:
    first, second = cameras()
    assert isinstance(first, Camera)
    assert [first.info.id, second.info.id] == ["fake0", "fake1"]
    assert first.info.output == "frames"
    for index, camera in enumerate((first, second)):
        await camera.open(VideoFormat(320, 240, 30))
        frame = await camera.read()
        info = read_pattern(frame)
        assert info is not None
        assert info.camera_index == index
        assert colour_distance(dominant_colour(frame), kit_colour("room-a")) < 6
        await camera.close()


async def test_frames_are_paced_in_real_time_without_drift() -> None:
    camera = cameras()[0]
    await camera.open(VideoFormat(320, 240, 30))
    loop = asyncio.get_running_loop()
    start = loop.time()
    counters, pts = [], []
    while loop.time() - start < 1.0:
        frame = await camera.read()
        info = read_pattern(frame)
        assert info is not None
        counters.append(info.counter)
        pts.append(frame.pts)
    elapsed = loop.time() - start
    assert 20 <= len(counters) <= 32, counters
    # The counter follows the clock, not the number of reads: no drift.
    assert abs(counters[-1] - elapsed * 30) <= 3
    assert counters == sorted(counters)
    assert pts == sorted(pts)
    assert (frame.width, frame.height, frame.format.name) == (320, 240, "yuv420p")
    assert camera.frames_produced == len(counters)


async def test_a_slow_reader_loses_frames_like_a_sensor() -> None:
    camera = cameras()[0]
    await camera.open(VideoFormat(160, 120, 30))
    first = read_pattern(await camera.read())
    await asyncio.sleep(0.2)  # six frame periods
    second = read_pattern(await camera.read())
    assert first is not None
    assert second is not None
    assert second.counter - first.counter >= 5
    assert camera.dropped_frames >= 4


async def test_fail_makes_the_camera_gone_until_restored() -> None:
    camera = cameras()[0]
    await camera.open(VideoFormat())
    await camera.read()
    camera.fail()
    assert not camera.is_open
    with pytest.raises(CameraError):
        await camera.read()
    with pytest.raises(CameraError):
        await camera.open(VideoFormat())
    camera.restore()
    assert not camera.is_open  # it must be opened again
    await camera.open(VideoFormat(640, 480, 15))
    assert camera.is_open
    assert read_pattern(await camera.read()) is not None
    assert camera.opens == [VideoFormat(640, 480, 30), VideoFormat(640, 480, 15)]


async def test_fail_during_a_read_raises_from_that_read() -> None:
    camera = cameras()[0]
    await camera.open(VideoFormat(160, 120, 2))
    await camera.read()
    pending = asyncio.ensure_future(camera.read())
    await asyncio.sleep(0.05)
    camera.fail()
    with pytest.raises(CameraError):
        await pending


async def test_close_releases_and_is_safe_twice() -> None:
    camera = cameras()[1]
    await camera.open(VideoFormat(320, 240, 30))
    with pytest.raises(CameraError):
        await camera.open(VideoFormat(320, 240, 30))
    await camera.close()
    await camera.close()
    assert not camera.is_open
    assert camera.closes == 1
    with pytest.raises(CameraError):
        await camera.read()
    camera.request_keyframe()
    assert camera.keyframe_requests == 1


async def test_sizes_are_rounded_to_even_and_limits_enforced() -> None:
    camera = cameras()[0]
    await camera.open(VideoFormat(321, 241, 10))
    assert camera.format == VideoFormat(320, 240, 10)
    frame = await camera.read()
    assert (frame.width, frame.height) == (320, 240)
    await camera.close()
    for bad in (VideoFormat(100, 100, 30), VideoFormat(3840, 2160, 30), VideoFormat(640, 480, 0)):
        with pytest.raises(CameraError):
            await camera.open(bad)


async def test_configured_colour_and_device_list() -> None:
    only = cameras(devices=["fake1"], fake_colour="#2050e0")
    assert [camera.info.id for camera in only] == ["fake1"]
    await only[0].open(VideoFormat(320, 240, 30))
    assert colour_distance(dominant_colour(await only[0].read()), (0x20, 0x50, 0xE0)) < 6
    with pytest.raises(HardwareError, match="fake7"):
        cameras(devices=["fake7"])
