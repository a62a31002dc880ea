"""The control bar, picking and dragging tiles: pixels on the fake screen, real calls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.calls import CallsError
from appliance.display import theme
from appliance.display.geometry import Rect
from appliance.display.layout import FillItem, SpriteItem, button_spec
from appliance.display.scene import Control, ControlBar
from hal.camera.pattern import kit_colour
from tests.display.conftest import (
    ScreenKit,
    live_tile_shows,
    near,
    paint_items,
    region,
)

Frame = np.ndarray[Any, Any]
A, B, C = kit_colour("room-a"), kit_colour("room-b"), kit_colour("room-c")


def bar_rect(kit: ScreenKit) -> Rect:
    bars = [
        i.rect
        for i in kit.screen.shown_layout.items
        if isinstance(i, FillItem) and i.colour == theme.BAR_BG
    ]
    assert len(bars) == 1, "no control bar"
    return bars[0]


def button_runs(frame: Frame, bar: Rect, row: int) -> int:
    """How many separate things are drawn across the bar at ``row``."""
    drawn = ~near(frame[row, bar.x : bar.right], theme.BAR_BG, 0)
    return int(np.count_nonzero(drawn[1:] & ~drawn[:-1]) + drawn[0])


def expected_bar(kit: ScreenKit, state: ControlBar) -> Frame:
    bar = bar_rect(kit)
    items = [FillItem(bar, theme.BAR_BG)]
    items += [
        SpriteItem(rect, button_spec(control, state))
        for control, rect in kit.screen.shown_layout.buttons
    ]
    return paint_items(tuple(items), kit.screen.size)[bar.slices()]


async def wait_bar(kit: ScreenKit, state: ControlBar) -> Frame:
    """Until the bar on screen is exactly the bar of ``state`` (every button, pixel for
    pixel, and nothing else)."""

    def check(frame: Frame) -> bool:
        if tuple(c for c, _ in kit.screen.shown_layout.buttons) != state.buttons:
            return False
        bar = bar_rect(kit)
        return bool((frame[bar.slices()] == expected_bar(kit, state)).all())

    return await kit.until(check)


@pytest.mark.parametrize(
    ("settings", "buttons"),
    [
        (
            {},
            (
                Control.MUTE,
                Control.PAUSE_VIDEO,
                Control.SWITCH_CAMERA,
                Control.AUDIO_MODE,
                Control.END,
            ),
        ),
        (
            {
                "mute_audio_button_disable": True,
                "switch_camera_button_disable": True,
                "show_recording_button": True,
                "show_switch_to_video_call": True,
            },
            (
                Control.PAUSE_VIDEO,
                Control.AUDIO_MODE,
                Control.SWITCH_TO_VIDEO,
                Control.RECORDING,
                Control.END,
            ),
        ),
        (
            {
                "end_call_button_disable": True,
                "pause_video_button_disable": True,
                "audio_mode_button_disable": True,
            },
            (Control.MUTE, Control.SWITCH_CAMERA),
        ),
    ],
)
async def test_the_control_bar_shows_exactly_the_enabled_buttons(
    screen_kits: Any, settings: dict[str, bool], buttons: tuple[Control, ...]
) -> None:
    a: ScreenKit = await screen_kits("room-a")
    await a.kit.join("bar", **settings)
    state = ControlBar(buttons=buttons, audio_mode="SPEAKER")
    frame = await wait_bar(a, state)
    bar = bar_rect(a)
    first = a.screen.shown_layout.buttons[0][1]
    assert button_runs(frame, bar, first.y + first.h // 3) == len(buttons)
    end = dict(a.screen.shown_layout.buttons).get(Control.END)
    if end is not None:  # the red one
        assert near(region(frame, end), theme.RED, 2).sum() > end.area // 10


async def test_no_default_layout_no_control_bar(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    await a.kit.join("bare", default_layout=False)
    frame = await a.until(
        lambda f: a.screen.shown_layout.tiles != () and a.screen.shown_layout.tiles[0].live
    )
    assert a.screen.shown_layout.buttons == ()
    assert not near(frame, theme.BAR_BG, 0).any()
    assert a.tile("room-a").rect.bottom > frame.shape[0] * 0.9


async def test_buttons_show_what_the_physical_buttons_did_and_act_when_touched(
    screen_kits: Any,
) -> None:
    a: ScreenKit = await screen_kits("room-a", controller=True)
    b: ScreenKit = await screen_kits("room-b")
    assert a.kit.controller is not None  # the delegate that ends the call on the end button
    await a.kit.controller.start_session("touch", {"show_recording_button": True})
    await b.kit.join("touch")
    buttons = (
        Control.MUTE, Control.PAUSE_VIDEO, Control.SWITCH_CAMERA, Control.AUDIO_MODE,
        Control.RECORDING, Control.END,
    )  # fmt: skip
    await wait_bar(a, ControlBar(buttons=buttons, audio_mode="SPEAKER"))

    a.kit.buttons.press("mute")
    await wait_bar(a, ControlBar(buttons=buttons, audio_mode="SPEAKER", muted=True))
    a.kit.buttons.press("pause")
    await wait_bar(
        a, ControlBar(buttons=buttons, audio_mode="SPEAKER", muted=True, video_paused=True)
    )

    def touch(control: Control) -> None:
        rect = dict(a.screen.shown_layout.buttons)[control]
        width, height = a.screen.size
        a.pointer.tap(rect.centre[0] / (width - 1), rect.centre[1] / (height - 1))

    touch(Control.MUTE)
    touch(Control.PAUSE_VIDEO)
    await wait_bar(a, ControlBar(buttons=buttons, audio_mode="SPEAKER"))
    session = a.kit.calls.session
    assert session is not None and not session.local.audio_muted and not session.local.video_paused
    touch(Control.AUDIO_MODE)  # the next route
    await wait_bar(a, ControlBar(buttons=buttons, audio_mode="EARPIECE"))
    touch(Control.RECORDING)
    await wait_bar(a, ControlBar(buttons=buttons, audio_mode="EARPIECE", recording=True))
    await b.until(lambda f: near(f[: f.shape[0] // 6, : f.shape[1] // 4], theme.RED, 25).sum() > 10)
    touch(Control.END)  # as the physical end button: the call ends
    await a.until(lambda f: tuple(f[0, 0]) == theme.HOME_BG and a.kit.calls.session is None)


async def test_picking_and_dragging_tiles(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    c: ScreenKit = await screen_kits("room-c")
    for kit in (a, b, c):
        await kit.kit.join("pick")

    await a.until(
        lambda f: all(
            live_tile_shows(a, u, c_)(f) for u, c_ in (("room-a", A), ("room-b", B), ("room-c", C))
        )
    )
    # Picking a grid tile brings it to the spotlight.
    a.screen.select("room-c")
    assert a.kit.calls.snapshot()["local"]["display_mode"] == "spotlight"

    def main_is(uid: str, colour: tuple[int, int, int]) -> Any:
        def check(frame: Frame) -> bool:
            tile = a.screen.shown_layout.tile_of(uid)
            return tile is not None and tile.main and live_tile_shows(a, uid, colour)(frame)

        return check

    frame = await a.until(main_is("room-c", C))
    main = a.tile("room-c").rect
    assert a.screen.hit_test(*main.centre) == "room-c"
    assert near(region(frame, main), C, 30).mean() > 0.5

    # The self view floats; it moves where it is put, within the spotlight's area.
    a.screen.move_tile("room-a", 20, 30)
    await a.until(lambda f: a.tile("room-a").rect.x == 20 and live_tile_shows(a, "room-a", A)(f))
    floating = a.tile("room-a").rect
    assert floating.y == 30 and a.screen.hit_test(25, 35) == "room-a"

    # Touch: tapping the filmstrip tile of room-b picks it; dragging moves the small tile.
    width, height = a.screen.size
    strip = a.tile("room-b").rect
    a.pointer.tap(strip.centre[0] / (width - 1), strip.centre[1] / (height - 1))
    await a.until(main_is("room-b", B))
    floating = a.tile("room-a").rect
    start = (floating.x + 5, floating.y + 5)
    path = [(start[0] + dx, start[1] + dx // 2) for dx in range(0, 121, 20)]
    a.pointer.drag([(x / (width - 1), y / (height - 1)) for x, y in path])
    await a.until(
        lambda f: a.tile("room-a").rect.x >= floating.x + 100 and live_tile_shows(a, "room-a", A)(f)
    )

    # Single: one participant fills the screen; the others are not shown.
    a.screen.set_mode("single")
    frame = await a.until(
        lambda f: a.screen.shown_layout.tile_of("room-c") is None and main_is("room-b", B)(f)
    )
    assert near(frame, C, 30).sum() == 0
    a.screen.select(None)  # follow the speaker again
    assert a.screen.scene.focus is None


async def test_refusals_and_bad_arguments(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    for call in (lambda: a.screen.select("room-b"), lambda: a.screen.set_mode("single")):
        with pytest.raises(CallsError) as raised:
            call()
        assert raised.value.code == "no-active-session"
    assert a.screen.hit_test(10, 10) is None
    await a.kit.join(
        "locked", enable_video_tile_click=False, enable_draggable_video_tile=False, mode="spotlight"
    )
    await b.kit.join("locked")
    await a.until(lambda f: a.screen.shown_layout.tile_of("room-b") is not None)
    with pytest.raises(CallsError) as raised:
        a.screen.select("room-b")
    assert raised.value.code == "tile-click-disabled" and raised.value.status == 409
    with pytest.raises(CallsError) as raised:
        a.screen.move_tile("room-a", 10, 10)
    assert raised.value.code == "tile-drag-disabled"
    # A tap on a tile does nothing when clicks are disabled.
    width, height = a.screen.size
    tile = a.tile("room-a").rect
    a.pointer.tap(tile.centre[0] / (width - 1), tile.centre[1] / (height - 1))
    await b.kit.calls.mute_audio(True)  # something else happens meanwhile
    await a.until(lambda f: a.screen.scene.people[1].muted)
    assert a.screen.scene.focus is None and a.tile("room-b").main

    with pytest.raises(ValueError, match="mode"):
        a.screen.set_mode("mosaic")
    with pytest.raises(ValueError, match="x"):
        a.screen.hit_test(-1, 0)
    with pytest.raises(ValueError, match="y"):
        a.screen.move_tile("room-a", 0, 10_000)
    with pytest.raises(ValueError, match="x"):
        a.screen.tap(1.5, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control"):
        await a.screen.press("teleport")


async def test_a_grid_tile_cannot_be_dragged(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    await a.kit.join("grid")
    await a.until(lambda f: a.screen.shown_layout.tile_of("room-a") is not None)
    with pytest.raises(CallsError) as raised:
        a.screen.move_tile("room-a", 10, 10)
    assert raised.value.code == "tile-not-floating"
    with pytest.raises(ValueError, match="uid"):
        a.screen.select("nobody")
