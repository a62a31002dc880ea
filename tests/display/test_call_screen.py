"""The call on the screen, checked on the fake display's pixels: real calls between kits
whose fake cameras paint their kit's colour."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from appliance.calls.settings import AvatarMode
from appliance.display import sprites, theme
from appliance.display.geometry import Rect
from appliance.display.layout import SpriteItem
from appliance.display.render import avatar_colour
from hal.camera.pattern import kit_colour
from tests.display.conftest import (
    ScreenKit,
    counter_shown,
    distance,
    live_tile_shows,
    near,
    outside,
    region,
)

Frame = np.ndarray[Any, Any]
A, B, C = kit_colour("room-a"), kit_colour("room-b"), kit_colour("room-c")


def sprite_rect(kit: ScreenKit, kind: type, where: Rect | None = None) -> Rect:
    for item in kit.screen.shown_layout.items:
        inside = where is None or where.contains(item.rect)
        if isinstance(item, SpriteItem) and isinstance(item.spec, kind) and inside:
            return item.rect
    raise AssertionError(f"no {kind.__name__} sprite on screen")


@pytest.mark.parametrize("mode", ["default", "spotlight", "single"])
async def test_each_camera_colour_lands_in_its_tile_and_nowhere_else(
    screen_kits: Any, mode: str
) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("colours", mode=mode)
    await b.kit.join("colours", mode=mode)
    frame = await a.until(
        lambda f: live_tile_shows(a, "room-a", A)(f) and live_tile_shows(a, "room-b", B)(f)
    )
    tile_a, tile_b = a.tile("room-a"), a.tile("room-b")
    assert near(outside(frame, tile_a.rect), A, 30).sum() == 0
    assert near(outside(frame, tile_b.rect), B, 30).sum() == 0
    if mode == "default":
        assert not tile_a.rect.intersects(tile_b.rect)
        assert tile_a.rect.w == tile_b.rect.w  # a grid of two equal tiles
    else:
        # The other kit fills the screen; the self view floats small over it.
        assert tile_b.main and tile_a.floating
        assert tile_a.rect.area * 10 < tile_b.rect.area
        assert near(region(frame, tile_b.rect), B, 30).mean() > 0.5
    assert tuple(frame[0, 0]) == theme.CALL_BG


@pytest.mark.parametrize("mode", ["default", "spotlight"])
async def test_the_far_cameras_frame_counter_reads_off_the_screen(
    screen_kits: Any, mode: str
) -> None:
    # What is drawn over a tile (the name label, the floating self view) leaves the test
    # pattern's code readable: a person, or a test, can tell live video from a frozen frame.
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("counter", mode=mode)
    await b.kit.join("counter", mode=mode)

    def far_counter(frame: Frame) -> int | None:
        tile = a.screen.shown_layout.tile_of("room-b")
        return None if tile is None or not tile.live else counter_shown(frame, tile.rect)

    await a.until(lambda f: far_counter(f) is not None)
    # Every frame shown from then on, as the counter runs through its low bits (a label over
    # a cell of the code hides it for most values).
    read: list[int | None] = []
    shown = None
    async with asyncio.timeout(30):
        while len(read) < 40:
            if (frame := a.display.last_frame) is not shown:
                shown = frame
                read.append(far_counter(frame))
            await asyncio.sleep(0.01)
    counters = [c for c in read if c is not None]
    assert len(counters) >= 0.9 * len(read), read
    assert counters == sorted(counters) and len(set(counters)) >= 10, read  # live, in order
    if mode == "spotlight":
        assert a.tile("room-b").main and a.tile("room-a").floating


@pytest.mark.parametrize("shape", [AvatarMode.circle, AvatarMode.square, AvatarMode.fullscreen])
async def test_a_paused_participant_shows_the_avatar_of_the_chosen_mode(
    screen_kits: Any, shape: AvatarMode
) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("avatars", avatar_mode=shape.value)
    await b.kit.join("avatars")
    await a.until(live_tile_shows(a, "room-b", B))
    await b.kit.calls.pause_video(True)
    face = avatar_colour("room-b")

    def avatar_shown(frame: Frame) -> bool:
        tile = a.screen.shown_layout.tile_of("room-b")
        return tile is not None and not tile.live and near(region(frame, tile.rect), face, 4).any()

    frame = await a.until(avatar_shown)
    tile = a.tile("room-b")
    assert near(frame, B, 30).sum() == 0  # the last video frame is gone
    inset = 3
    if shape is AvatarMode.fullscreen:
        corners = [
            (tile.rect.x + inset, tile.rect.y + inset),
            (tile.rect.right - inset, tile.rect.y + inset),
        ]
        assert all(distance(tuple(frame[y, x]), face) <= 4 for x, y in corners)
        return
    box = sprite_rect(a, sprites.Avatar, tile.rect)
    assert box.w == box.h and box.w < tile.rect.h
    top_centre = (box.x + box.w // 2, box.y + box.h // 10)
    assert distance(tuple(frame[top_centre[1], top_centre[0]]), face) <= 4
    corners = [(box.x + inset, box.y + inset), (box.right - inset, box.bottom - inset)]
    expected = face if shape is AvatarMode.square else theme.TILE_BG
    for x, y in corners:
        assert distance(tuple(frame[y, x]), expected) <= 4, (shape, x, y)
    # Around the avatar, the tile's own background.
    assert tuple(frame[tile.rect.y + inset, tile.rect.x + inset]) == theme.TILE_BG


async def test_mute_video_off_and_recording_indicators(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("indicators")
    await b.kit.join("indicators")
    await a.until(live_tile_shows(a, "room-b", B))

    def label(frame: Frame) -> Frame:
        return region(frame, sprite_rect(a, sprites.Label, a.tile("room-b").rect))

    assert not near(label(a.shown()), theme.RED, 25).any()
    await b.kit.calls.mute_audio(True)
    await a.until(lambda f: near(label(f), theme.RED, 25).sum() > 4)

    top_left = Rect(0, 0, a.screen.size[0] // 4, a.screen.size[1] // 6)
    assert not near(region(a.shown(), top_left), theme.RED, 25).any()
    await b.kit.calls.start_recording()
    # Both screens show that the call is recorded.
    for kit in (a, b):
        await kit.until(lambda f: near(region(f, top_left), theme.RED, 25).sum() > 10)
    await b.kit.calls.stop_recording()
    await a.until(lambda f: not near(region(f, top_left), theme.RED, 25).any())


async def test_the_active_speaker_is_outlined(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("speaker")
    await b.kit.join("speaker")
    await a.kit.calls.mute_audio(True)

    def outlined(uid: str) -> Any:
        def check(frame: Frame) -> bool:
            tile = a.screen.shown_layout.tile_of(uid)
            if tile is None:
                return False
            top = frame[tile.rect.y, tile.rect.x : tile.rect.right]
            return bool(near(top, theme.SPEAKER, 2).all())

        return check

    await a.until(outlined("room-b"))
    assert not outlined("room-a")(a.shown())
    await b.kit.calls.mute_audio(True)
    await a.kit.calls.mute_audio(False)
    await a.until(outlined("room-a"))
    assert not outlined("room-b")(a.shown())


async def test_an_audio_only_call_shows_avatars(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("voice", is_audio_only=True)
    await b.kit.join("voice", is_audio_only=True)

    def avatars(frame: Frame) -> bool:
        tiles = a.screen.shown_layout.tiles
        return len(tiles) == 2 and all(
            near(region(frame, t.rect), avatar_colour(t.uid), 4).sum() > 100 for t in tiles
        )

    frame = await a.until(avatars)
    assert near(frame, A, 30).sum() == 0 and near(frame, B, 30).sum() == 0


async def test_pip_shrinks_the_call_to_a_corner_over_home(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("pip")
    await b.kit.join("pip")
    await a.until(live_tile_shows(a, "room-b", B))
    await a.kit.calls.enter_pip_mode()

    def in_corner(frame: Frame) -> bool:
        area = a.screen.shown_layout.call_area
        return (
            tuple(frame[0, 0]) == theme.HOME_BG
            and area is not None
            and area.x > frame.shape[1] // 2
            and live_tile_shows(a, "room-b", B)(frame)
        )

    frame = await a.until(in_corner)
    area = a.screen.shown_layout.call_area
    assert area is not None
    assert near(outside(frame, area), B, 30).sum() == 0
    assert near(outside(frame, area), A, 30).sum() == 0
    # A tap on the small window brings the call back.
    width, height = a.screen.size
    a.pointer.tap(area.centre[0] / (width - 1), area.centre[1] / (height - 1))
    await a.until(lambda f: tuple(f[0, 0]) == theme.CALL_BG and live_tile_shows(a, "room-b", B)(f))
