"""The compositor as a device driver's client: unplugged screens, static screens, frames
out (PNG, stream, recorder), avatars from URLs, no screen at all."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from appliance.calls.settings import AvatarMode, DisplayMode
from appliance.display import theme
from appliance.display.compositor import RECORDING_SIZE, Compositor
from appliance.display.layout import FillItem
from appliance.display.scene import HomeInfo, Scene
from appliance.server import SessionServer
from hal.camera.pattern import kit_colour
from hal.display.fake import FakeDisplay
from tests.display.conftest import (
    SCREEN,
    ScreenKit,
    distance,
    median_colour,
    near,
    painted,
    region,
)
from tests.kits import KitFactory

HOME = HomeInfo("Room A", "http://127.0.0.1:8080", ready=True)


def home(name: str) -> HomeInfo:
    return HomeInfo(name, HOME.address, True)


async def test_an_unplugged_screen_is_retried_and_composing_goes_on(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    a.screen.set_home(HOME)
    await a.until(lambda f: (f == painted(Scene(home=HOME))).all())
    a.display.unplug()
    a.screen.set_home(home("Unplugged"))
    expected = painted(Scene(home=home("Unplugged")))
    async with asyncio.timeout(10):
        while not (a.screen.snapshot_rgb() == expected).all():
            await asyncio.sleep(0.05)
    assert not a.screen.display_connected
    assert (a.shown() == painted(Scene(home=HOME))).all()  # the screen kept the old picture
    a.display.replug()
    await a.until(lambda f: (f == expected).all())
    assert a.screen.display_connected


async def test_a_static_screen_does_no_work(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    a.screen.set_home(HOME)
    await a.until(lambda f: (f == painted(Scene(home=HOME))).all())
    painted_before = a.screen.painter.frames
    shown_before = a.display.frames_shown
    await asyncio.sleep(2.5)  # several of the compositor's checks go by
    assert a.screen.painter.frames == painted_before
    assert a.display.frames_shown == shown_before


async def test_png_and_frame_stream(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    a.screen.set_home(HOME)
    await a.until(lambda f: (f == painted(Scene(home=HOME))).all())
    png = await a.screen.snapshot_png()
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert (decoded == a.screen.snapshot_rgb()).all()

    number = a.screen.frame_number
    waiter = asyncio.create_task(a.screen.next_frame(number))
    await asyncio.sleep(0.3)
    assert not waiter.done()  # nothing changed, nothing to send
    a.screen.set_home(home("Renamed"))
    newer, frame = await asyncio.wait_for(waiter, 10)
    assert newer > number
    assert (frame == painted(Scene(home=home("Renamed")))).all()
    with pytest.raises(ValueError, match="after"):
        await a.screen.next_frame("last")  # type: ignore[arg-type]


async def test_without_a_screen_it_still_composes(kits: KitFactory) -> None:
    kit = await kits("room-a", display={"backend": "disabled"})
    assert kit.hardware.display is None
    screen = Compositor(None, kit.calls, size=(320, 240), fps=30)
    await screen.start()
    try:
        screen.set_home(HOME)
        expected = painted(Scene(home=HOME), (320, 240))
        number, frame = await asyncio.wait_for(screen.next_frame(0), 10)
        while not (frame == expected).all():
            number, frame = await asyncio.wait_for(screen.next_frame(number), 10)
        assert screen.size == (320, 240)
    finally:
        await screen.stop()
    with pytest.raises(ValueError, match="size"):
        Compositor(None, kit.calls, size=(10, 10))
    with pytest.raises(ValueError, match="fps"):
        Compositor(None, kit.calls, fps=0)


async def test_the_recorder_records_the_call_without_the_screens_buttons(
    screen_kits: Any, tmp_path: Path
) -> None:
    """A recording is the call composed in the default layout (every participant's video),
    not a capture of the screen: no control bar, whatever the screen shows."""
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("rec")
    await b.kit.join("rec")
    colour_b = kit_colour("room-b")
    await a.until(
        lambda f: (
            (t := a.screen.shown_layout.tile_of("room-b")) is not None
            and t.live
            and distance(median_colour(f, t.rect), colour_b) < 30
        )
    )
    assert near(a.shown()[-3:, :], theme.BAR_BG, 12).mean() > 0.8  # the screen has its bar
    a.screen.set_mode(DisplayMode.spotlight)  # and another layout
    path = await a.kit.calls.start_recording()
    await asyncio.sleep(1.5)
    await a.kit.calls.stop_recording()
    layout = a.screen.recording_layout()
    assert not [i for i in layout.items if isinstance(i, FillItem) and i.colour == theme.BAR_BG]
    assert {t.uid for t in layout.tiles} >= {"room-a", "room-b"}
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) > 5
    last = frames[-1]
    assert last.shape == (RECORDING_SIZE[1], RECORDING_SIZE[0], 3)
    # Each participant's video where the default layout puts it: both kits, side by side.
    for uid in ("room-a", "room-b"):
        tile = layout.tile_of(uid)
        assert tile is not None and tile.rect.w < RECORDING_SIZE[0] * 0.75, uid
        inner = tile.rect.inset(tile.rect.w // 5, tile.rect.h // 5)
        assert distance(median_colour(last, inner), kit_colour(uid)) < 40, uid
    assert near(last[-3:, :], theme.BAR_BG, 12).mean() < 0.5


async def test_an_avatar_image_from_a_url(
    screen_kits: Any, server: SessionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    face = (250, 200, 40)
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), face).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    create_user = server.create_user

    async def with_avatar(uid: str, name: str, avatar: str | None = None) -> str:
        return await create_user(uid, name, url if uid == "room-b" else avatar)

    monkeypatch.setattr(server, "create_user", functools.partial(with_avatar))
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("faces", avatar_mode=AvatarMode.fullscreen.value)
    await b.kit.join("faces", start_video_muted=True)

    def picture(frame: Any) -> bool:
        tile = a.screen.shown_layout.tile_of("room-b")
        return tile is not None and near(region(frame, tile.rect), face, 3).mean() > 0.8

    await a.until(picture)


class Monitor(FakeDisplay):
    """A fake screen whose size is that of whatever monitor is plugged in."""

    def plug_in(self, width: int, height: int) -> None:
        self._size = (width, height)
        self.replug()


async def test_another_monitor_is_composed_at_its_size(kits: KitFactory) -> None:
    kit = await kits("room-a")
    monitor = Monitor(*SCREEN)
    screen = Compositor(monitor, kit.calls)
    await screen.start()
    try:
        screen.set_home(HOME)
        async with asyncio.timeout(10):
            while (
                monitor.last_frame is None
                or not (monitor.last_frame == painted(Scene(home=HOME))).all()
            ):
                await asyncio.sleep(0.05)
        number = screen.frame_number
        monitor.unplug()
        screen.set_home(home("Away"))
        await asyncio.sleep(0.3)
        monitor.plug_in(800, 480)
        expected = painted(Scene(home=home("Away")), (800, 480))
        async with asyncio.timeout(10):
            while monitor.last_frame is None or monitor.last_frame.shape != expected.shape:
                await asyncio.sleep(0.05)
        assert (monitor.last_frame == expected).all()
        assert screen.size == (800, 480) and screen.frame_number > number
    finally:
        await screen.stop()
