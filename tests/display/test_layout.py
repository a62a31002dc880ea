"""The layout's geometry: every mode, 1 to 16 participants, several screens."""

from __future__ import annotations

import itertools

import pytest

from appliance.calls.settings import AvatarMode, DisplayMode
from appliance.display import sprites
from appliance.display.geometry import Rect, fit, merge_rects
from appliance.display.layout import (
    FillItem,
    Layout,
    SpriteItem,
    Tile,
    VideoItem,
    compute_layout,
    grid_shape,
    main_person,
)
from appliance.display.scene import (
    LOCAL_VIDEO,
    Control,
    ControlBar,
    HomeInfo,
    Notice,
    Person,
    Ringing,
    Scene,
    Screen,
)

SIZES = [(1920, 1080), (1280, 720), (800, 480), (1080, 1920)]
ASPECTS = [4 / 3, 16 / 9, 9 / 16, 1.0]
ALL_BUTTONS = ControlBar(buttons=tuple(Control))


def people(count: int, *, live: bool = True, paused: tuple[int, ...] = ()) -> tuple[Person, ...]:
    """The kit and count - 1 others, with a mix of video shapes (every paused one shows an
    avatar)."""
    out = []
    for index in range(count):
        aspect = ASPECTS[index % len(ASPECTS)] if live and index not in paused else None
        out.append(
            Person(
                uid="me" if index == 0 else f"kit-{index}",
                name="Me" if index == 0 else f"Kit {index}",
                video=LOCAL_VIDEO if index == 0 else f"kit-{index}",
                is_local=index == 0,
                video_aspect=aspect,
                video_paused=index in paused,
            )
        )
    return tuple(out)


def call(count: int, mode: DisplayMode, **extra: object) -> Scene:
    return Scene(screen=Screen.CALL, people=people(count), mode=mode, **extra)  # type: ignore[arg-type]


def non_floating(layout: Layout) -> list[Tile]:
    return [t for t in layout.tiles if not t.floating]


def assert_sound(layout: Layout, scene: Scene) -> None:
    width, height = layout.size
    screen = Rect(0, 0, width, height)
    for item in layout.items:
        if not isinstance(item.spec if isinstance(item, SpriteItem) else None, sprites.Cursor):
            assert screen.contains(item.rect), item
    area = layout.call_area
    assert area is not None
    for tile in layout.tiles:
        assert area.contains(tile.rect), tile
        assert tile.rect.w >= 2 and tile.rect.h >= 2
    for a, b in itertools.combinations(non_floating(layout), 2):
        assert not a.rect.intersects(b.rect), (a, b)
    bar = [rect for _, rect in layout.buttons]
    for tile in layout.tiles:
        for rect in bar:
            assert not tile.rect.intersects(rect), (tile, rect)
    for a, b in itertools.combinations(bar, 2):
        assert not a.intersects(b)
    by_uid = {p.uid: p for p in scene.people}
    for tile in layout.tiles:
        person = by_uid[tile.uid]
        assert tile.live == (person.video_aspect is not None)
        aspect = person.video_aspect or 16 / 9
        # Sides are whole, even pixels: at most 2 px off the exact shape on each side.
        assert abs(tile.rect.w - tile.rect.h * aspect) <= 2 + 2 * aspect, (tile, aspect)
    assert len({t.uid for t in layout.tiles}) == len(layout.tiles)
    assert layout.videos == {t.video for t in layout.tiles if t.live}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", list(DisplayMode.__members__.values())[:3])
@pytest.mark.parametrize("count", range(1, 17))
@pytest.mark.parametrize("controls", [True, False])
def test_every_mode_and_count_is_sound(
    size: tuple[int, int], mode: DisplayMode, count: int, controls: bool
) -> None:
    scene = call(count, mode, controls=ALL_BUTTONS if controls else None, speaker="kit-1")
    layout = compute_layout(scene, size)
    assert_sound(layout, scene)
    floating = [t for t in layout.tiles if t.floating]
    if mode is DisplayMode.default:
        assert len(layout.tiles) == count and not floating
    elif mode is DisplayMode.single:
        assert len(layout.tiles) == (1 if count == 1 else 2)
    else:
        assert len(layout.tiles) == count
    if floating:
        (tile,) = floating
        assert tile.uid == "me"
        assert layout.floating_area is not None
        assert layout.floating_area.contains(tile.rect)
        for other in non_floating(layout):
            if not other.main:  # it floats over the spotlight, never over the filmstrip
                assert not tile.rect.intersects(other.rect)


@pytest.mark.parametrize("count", range(1, 17))
def test_paused_and_audio_only_people_keep_a_sound_layout(count: int) -> None:
    paused = tuple(range(0, count, 2))
    for mode in (DisplayMode.default, DisplayMode.single, DisplayMode.spotlight):
        scene = Scene(screen=Screen.CALL, people=people(count, paused=paused), mode=mode)
        assert_sound(compute_layout(scene, (1920, 1080)), scene)


def test_grid_grows_1_2_4_6_9_12_16() -> None:
    shapes = {n: grid_shape(n) for n in range(1, 17)}
    assert [shapes[n][0] * shapes[n][1] for n in (1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 16)] == [
        1, 2, 4, 4, 6, 6, 9, 9, 12, 12, 16, 16
    ]  # fmt: skip
    assert grid_shape(2, portrait=True) == (1, 2)
    assert grid_shape(17) == (5, 4)


@pytest.mark.parametrize(
    ("count", "rows"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2), (7, 3), (9, 3)]
)
def test_grid_rows_and_a_centred_last_row(count: int, rows: int) -> None:
    scene = Scene(screen=Screen.CALL, people=people(count, live=False))
    layout = compute_layout(scene, (1920, 1080))
    tops = sorted({t.rect.y for t in layout.tiles})
    assert len(tops) == rows
    last_row = [t.rect for t in layout.tiles if t.rect.y == tops[-1]]
    left, right = min(r.x for r in last_row), max(r.right for r in last_row)
    assert abs(left - (1920 - right)) <= 2  # centred


def test_tiles_use_the_screen() -> None:
    """One participant fills most of the screen; four share it."""
    for count, share in ((1, 0.9), (4, 0.2)):
        layout = compute_layout(
            Scene(screen=Screen.CALL, people=people(count, live=False)), (1920, 1080)
        )
        for tile in layout.tiles:
            assert tile.rect.w >= share * 1920 or tile.rect.h >= share * 1080


def test_single_mode_shows_the_picked_then_the_speaker_then_the_first_other() -> None:
    everyone = people(4)
    base = Scene(screen=Screen.CALL, people=everyone, mode=DisplayMode.single)
    assert main_person(base) == everyone[1]
    assert main_person(Scene(screen=Screen.CALL, people=everyone, speaker="kit-3")) == everyone[3]
    # The kit's own voice never takes the spotlight from the others, but picking it does.
    assert main_person(Scene(screen=Screen.CALL, people=everyone, speaker="me")) == everyone[1]
    picked = Scene(
        screen=Screen.CALL, people=everyone, mode=DisplayMode.single, focus="me", speaker="kit-3"
    )
    layout = compute_layout(picked, (1920, 1080))
    (tile,) = layout.tiles
    assert tile.uid == "me" and tile.main
    alone = Scene(screen=Screen.CALL, people=everyone[:1], mode=DisplayMode.single)
    assert [t.uid for t in compute_layout(alone, (1920, 1080)).tiles] == ["me"]


def test_single_mode_fills_the_screen_with_the_main_participant() -> None:
    scene = Scene(
        screen=Screen.CALL, people=people(3, live=False), mode=DisplayMode.single, speaker="kit-2"
    )
    layout = compute_layout(scene, (1920, 1080))
    main = next(t for t in layout.tiles if t.main)
    assert main.uid == "kit-2"
    assert main.rect.w >= 1900 or main.rect.h >= 1060
    floating = next(t for t in layout.tiles if t.floating)
    assert floating.rect.area < main.rect.area / 10


def test_spotlight_puts_the_others_in_a_filmstrip_below() -> None:
    scene = Scene(screen=Screen.CALL, people=people(6), mode=DisplayMode.spotlight, focus="kit-4")
    layout = compute_layout(scene, (1920, 1080))
    main = next(t for t in layout.tiles if t.main)
    assert main.uid == "kit-4"
    strip = [t for t in layout.tiles if not t.main and not t.floating]
    assert {t.uid for t in strip} == {"kit-1", "kit-2", "kit-3", "kit-5"}
    assert all(t.rect.y >= main.rect.bottom for t in strip)
    assert all(t.rect.area < main.rect.area / 4 for t in strip)


def test_the_floating_tile_moves_and_stays_inside_its_area() -> None:
    base = Scene(
        screen=Screen.CALL, people=people(3), mode=DisplayMode.spotlight, controls=ALL_BUTTONS
    )
    default = next(t for t in compute_layout(base, (1920, 1080)).tiles if t.floating)
    moved_scene = Scene(**{**base.__dict__, "floating_at": (100, 120)})
    layout = compute_layout(moved_scene, (1920, 1080))
    moved = next(t for t in layout.tiles if t.floating)
    assert (moved.rect.x, moved.rect.y) == (100, 120)
    assert moved.rect.w == default.rect.w
    far = Scene(**{**base.__dict__, "floating_at": (1919, 1079)})
    layout = compute_layout(far, (1920, 1080))
    clamped = next(t for t in layout.tiles if t.floating)
    assert layout.floating_area is not None and layout.floating_area.contains(clamped.rect)
    assert_sound(layout, far)


def test_control_bar_has_exactly_the_enabled_buttons_in_order() -> None:
    for buttons in [
        (),
        (Control.END,),
        (Control.MUTE, Control.RECORDING, Control.END),
        tuple(Control),
    ]:
        scene = call(2, DisplayMode.default, controls=ControlBar(buttons=buttons))
        layout = compute_layout(scene, (1920, 1080))
        assert tuple(c for c, _ in layout.buttons) == buttons
        xs = [rect.x for _, rect in layout.buttons]
        assert xs == sorted(xs)
    without = compute_layout(call(2, DisplayMode.default), (1920, 1080))
    assert without.buttons == ()
    with_bar = compute_layout(
        call(2, DisplayMode.default, controls=ControlBar(buttons=())), (1920, 1080)
    )
    assert max(t.rect.bottom for t in with_bar.tiles) < max(t.rect.bottom for t in without.tiles)


def test_avatar_modes() -> None:
    for mode in AvatarMode.__members__.values():
        scene = Scene(screen=Screen.CALL, people=people(2, paused=(1,)), avatar_mode=mode)
        layout = compute_layout(scene, (1920, 1080))
        tile = layout.tile_of("kit-1")
        assert tile is not None and not tile.live
        avatar = next(
            i
            for i in layout.items
            if isinstance(i, SpriteItem) and isinstance(i.spec, sprites.Avatar)
        )
        assert isinstance(avatar.spec, sprites.Avatar) and avatar.spec.shape is mode
        if mode is AvatarMode.fullscreen:
            assert avatar.rect == tile.rect
        else:
            assert avatar.rect.w == avatar.rect.h and tile.rect.contains(avatar.rect)
            assert avatar.rect.w < tile.rect.h


def test_pip_puts_the_call_in_a_corner_over_home() -> None:
    scene = call(
        3,
        DisplayMode.default,
        pip=True,
        controls=ALL_BUTTONS,
        home=HomeInfo("Kit", "http://x", True),
    )
    layout = compute_layout(scene, (1920, 1080))
    area = layout.call_area
    assert area is not None
    assert area.area < 0.15 * 1920 * 1080
    assert area.right > 1800 and area.bottom > 1000  # bottom right
    assert layout.buttons == ()  # no control bar in the small window
    assert all(area.contains(t.rect) for t in layout.tiles)
    assert isinstance(layout.items[0], FillItem) and layout.items[0].rect == Rect(0, 0, 1920, 1080)
    assert_sound(layout, scene)


def test_every_screen_outside_the_call_has_a_layout() -> None:
    scenes = [
        Scene(home=HomeInfo("Kit", "http://10.0.0.2:8080", True, api_token="t" * 20)),
        Scene(screen=Screen.CONNECTING),
        Scene(screen=Screen.INCOMING, ringing=Ringing(True, "Room B", "room-b", "video")),
        Scene(screen=Screen.OUTGOING, ringing=Ringing(False, "Room B", "room-b", "audio")),
        Scene(screen=Screen.NOTICE, notice=Notice("Call ended", "Duration 1:00")),
    ]
    for scene in scenes:
        for size in SIZES:
            layout = compute_layout(scene, size)
            assert layout.tiles == () and layout.buttons == ()
            screen = Rect(0, 0, *size)
            assert all(screen.contains(item.rect) for item in layout.items)
            assert not any(isinstance(item, VideoItem) for item in layout.items)


def test_same_scene_same_layout_and_bad_sizes() -> None:
    scene = call(5, DisplayMode.spotlight)
    assert compute_layout(scene, (1920, 1080)) == compute_layout(scene, (1920, 1080))
    with pytest.raises(ValueError, match="size"):
        compute_layout(scene, (10, 10))


def test_geometry_helpers() -> None:
    box = Rect(10, 20, 400, 100)
    fitted = fit(box, 16 / 9)
    assert box.contains(fitted) and fitted.h == 100 and fitted.w % 2 == 0
    assert Rect(0, 0, 50, 50).clamped_into(Rect(10, 10, 100, 100)) == Rect(10, 10, 50, 50)
    merged = merge_rects(
        [Rect(0, 0, 10, 10), Rect(5, 5, 10, 10), Rect(50, 50, 5, 5)], Rect(0, 0, 100, 100)
    )
    assert sorted(merged) == [Rect(0, 0, 15, 15), Rect(50, 50, 5, 5)]
    assert merge_rects([Rect(-5, -5, 10, 10)], Rect(0, 0, 100, 100)) == [Rect(0, 0, 5, 5)]


def test_a_toast_stays_clear_of_the_buttons_and_the_pip_window() -> None:
    text = "Hold the end button to leave the call"
    for scene in (
        Scene(toast=text),
        call(3, DisplayMode.default, controls=ALL_BUTTONS, toast=text),
        call(3, DisplayMode.default, controls=ALL_BUTTONS, pip=True, toast=text),
    ):
        layout = compute_layout(scene, (1920, 1080))
        toast = next(
            i.rect
            for i in layout.items
            if isinstance(i, SpriteItem)
            and isinstance(i.spec, sprites.Text)
            and i.spec.text == text
        )
        assert Rect(0, 0, 1920, 1080).contains(toast)
        assert not any(toast.intersects(rect) for _, rect in layout.buttons)
        if scene.pip:
            assert layout.call_area is not None and not toast.intersects(layout.call_area)
