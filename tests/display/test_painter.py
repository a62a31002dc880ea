"""The painter and the sprites, without calls: incremental painting equals painting from
scratch, only what changed is repainted, blending is right, any frame format is drawn."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from PIL import Image, ImageDraw

from appliance.calls.settings import AvatarMode, DisplayMode
from appliance.display import icons, sprites, theme
from appliance.display.avatars import AvatarError, AvatarImages, data_uri_bytes, decode
from appliance.display.geometry import Rect
from appliance.display.layout import button_spec, compute_layout
from appliance.display.painter import Painter
from appliance.display.render import SpriteCache, fit_text, initials, render, sprite_from_rgba
from appliance.display.scene import (
    LOCAL_VIDEO,
    Control,
    ControlBar,
    Person,
    Scene,
    Screen,
)
from hal.camera.pattern import KIT_PALETTE, TestPattern

SIZE = (960, 540)


def person(index: int, live: bool = True, muted: bool = False) -> Person:
    return Person(
        uid=f"kit-{index}",
        name=f"Kit {index}",
        video=LOCAL_VIDEO if index == 0 else f"kit-{index}",
        is_local=index == 0,
        video_aspect=4 / 3 if live else None,
        muted=muted,
    )


def frames(count: int, counter: int) -> dict[str, av.VideoFrame]:
    out = {}
    for index in range(count):
        pattern = TestPattern(320, 240, colour=KIT_PALETTE[index], label=str(index), camera_index=0)
        out[person(index).video] = pattern.frame(counter)
    return out


def fresh(items: Any, video: dict[str, av.VideoFrame]) -> np.ndarray[Any, Any]:
    painter = Painter(SIZE, SpriteCache(lambda url: None))
    painter.paint(items, video)
    return painter.canvas


def test_incremental_painting_equals_painting_from_scratch() -> None:
    painter = Painter(SIZE, SpriteCache(lambda url: None))
    bar = ControlBar(buttons=tuple(Control))
    scenes = [
        Scene(screen=Screen.CALL, people=tuple(person(i) for i in range(4)), controls=bar),
        Scene(
            screen=Screen.CALL,
            people=(person(0), person(1, muted=True), person(2, live=False), person(3)),
            controls=bar,
            speaker="kit-3",
            speaking=True,
            recording=True,
        ),
        Scene(
            screen=Screen.CALL,
            people=tuple(person(i) for i in range(4)),
            mode=DisplayMode.spotlight,
            floating_at=(40, 50),
            timeout_left=30,
        ),
        Scene(screen=Screen.CALL, people=tuple(person(i) for i in range(4)), pip=True),
        Scene(),
    ]
    counter = 0
    for scene in scenes:
        items = compute_layout(scene, SIZE).items
        for _ in range(3):
            counter += 1
            video = frames(4, counter)
            painter.paint(items, video)
            assert (painter.canvas == fresh(items, video)).all(), (scene, counter)


def test_only_what_changed_is_repainted() -> None:
    painter = Painter(SIZE, SpriteCache(lambda url: None))
    scene = Scene(screen=Screen.CALL, people=tuple(person(i) for i in range(4)))
    layout = compute_layout(scene, SIZE)
    video = frames(4, 1)
    assert painter.paint(layout.items, video) == [Rect(0, 0, *SIZE)]
    assert painter.paint(layout.items, video) == []  # nothing new: nothing painted
    before = painter.canvas.copy()
    video = {**video, "kit-2": frames(4, 2)["kit-2"]}
    tile = layout.tile_of("kit-2")
    assert tile is not None
    assert painter.paint(layout.items, video) == [tile.rect]
    changed = np.argwhere((painter.canvas != before).any(axis=-1))
    assert tile.rect.contains(
        Rect(
            int(changed[:, 1].min()),
            int(changed[:, 0].min()),
            int(np.ptp(changed[:, 1])) + 1,
            int(np.ptp(changed[:, 0])) + 1,
        )
    )
    # A muted participant: only their label changes.
    muted = Scene(screen=Screen.CALL, people=(*scene.people[:3], person(3, muted=True)))
    regions = painter.paint(compute_layout(muted, SIZE).items, video)
    other = layout.tile_of("kit-3")
    assert other is not None
    assert len(regions) == 1 and other.rect.contains(regions[0])
    assert regions[0].area < other.rect.area / 5


@pytest.mark.parametrize("fmt", ["yuv420p", "rgb24", "gray", "nv12", "yuvj420p"])
def test_any_frame_format_is_drawn(fmt: str) -> None:
    colour = (40, 200, 90)
    frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), colour, np.uint8), format="rgb24")
    frame = frame.reformat(format=fmt)
    scene = Scene(screen=Screen.CALL, people=(person(0),))
    layout = compute_layout(scene, SIZE)
    canvas = fresh(layout.items, {LOCAL_VIDEO: frame})
    tile = layout.tile_of("kit-0")
    assert tile is not None
    middle = canvas[tile.rect.centre[1], tile.rect.centre[0]].astype(int)
    if fmt == "gray":
        assert abs(middle[0] - middle[1]) <= 2  # grey stays grey
    else:
        assert np.abs(middle - colour).max() <= 6


def test_blending_a_half_transparent_sprite() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[...] = (200, 100, 0, 128)
    rgba[0, 0, 3] = 0  # a transparent corner
    sprite = sprite_from_rgba(rgba)
    assert not sprite.opaque
    canvas = np.full((10, 10, 3), 50, np.uint8)
    sprite.draw(canvas, Rect(2, 2, 4, 4), Rect(0, 0, 10, 10))
    expected = np.round((np.array([200, 100, 0]) * 128 + 50 * 127) / 255)
    assert (np.abs(canvas[3, 3].astype(int) - expected) <= 1).all()
    assert (canvas[2, 2] == 50).all() and (canvas[0, 0] == 50).all()
    # Clipped: only inside the clip rectangle.
    canvas[...] = 50
    sprite.draw(canvas, Rect(2, 2, 4, 4), Rect(0, 0, 4, 10))
    assert (canvas[3, 4] == 50).all() and not (canvas[3, 3] == 50).all()
    opaque = sprite_from_rgba(np.full((3, 3, 4), 255, np.uint8))
    assert opaque.opaque


def test_avatar_shapes_and_initials() -> None:
    size = 64
    for shape in (AvatarMode.circle, AvatarMode.square, AvatarMode.fullscreen):
        rgba = render(sprites.Avatar("kit-9", "Ada Lovelace", shape), size, size, lambda url: None)
        corner_alpha = rgba[1, 1, 3]
        assert corner_alpha == (0 if shape is AvatarMode.circle else 255)
        assert rgba[size // 2, 3, 3] == 255  # the middle of the left edge is inside any shape
    assert initials("Ada Lovelace") == "AL"
    assert initials("room-b") == "RB"
    assert initials("") == "?"


def test_text_is_cut_to_fit() -> None:
    assert fit_text("short", 20, 1000) == "short"
    cut = fit_text("a rather long participant name indeed", 20, 120)
    assert cut.endswith("…") and len(cut) < 30
    assert fit_text("x" * 50, 20, 2) == ""


def test_every_sprite_and_icon_renders() -> None:
    specs: list[sprites.SpriteSpec] = [
        sprites.Text("Hello", 20, pill=theme.BANNER_BG, dot=theme.GREEN),
        sprites.Label("Kit", muted=True, video_paused=True),
        sprites.RecordingBadge(),
        sprites.KeyHint("MUTE", "Answer", theme.GREEN),
        sprites.Cursor(),
    ]
    bar = ControlBar(buttons=tuple(Control), audio_mode="HEADPHONES")
    specs += [button_spec(control, bar) for control in Control]
    for spec in specs:
        rgba = render(spec, 120, 60, lambda url: None)
        assert rgba.shape == (60, 120, 4) and rgba[..., 3].any(), spec
    for name in icons.NAMES:
        image = Image.new("RGBA", (40, 40))
        icons.draw(ImageDraw.Draw(image), name, (4, 4, 36, 36), (255, 255, 255, 255))
        assert np.asarray(image)[..., 3].any(), name
    with pytest.raises(ValueError, match="icon"):
        icons.draw(ImageDraw.Draw(image), "nope", (0, 0, 1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="size"):
        render(sprites.Cursor(), 0, 10, lambda url: None)


def test_sprites_are_rendered_once() -> None:
    cache = SpriteCache(lambda url: None)
    spec = sprites.Text("Once", 20)
    first = cache.get(spec, 100, 30)
    assert cache.get(spec, 100, 30) is first
    assert cache.renders == 1
    small = SpriteCache(lambda url: None, max_bytes=1)
    small.get(spec, 100, 30)
    small.get(sprites.Text("Twice", 20), 100, 30)
    assert small.get(spec, 100, 30) is not first  # dropped and rendered again
    assert small.renders == 3


def _png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_avatar_images_from_http_and_data_urls(unused_tcp_port: int) -> None:
    async def face(request: web.Request) -> web.Response:
        return web.Response(body=_png((9, 99, 199)))

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/face.png", face)
    app.router.add_get("/missing.png", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    loaded = asyncio.Event()
    images = AvatarImages(on_loaded=loaded.set)
    try:
        url = f"http://127.0.0.1:{unused_tcp_port}/face.png"
        images.want(url)
        images.want(f"http://127.0.0.1:{unused_tcp_port}/missing.png")
        images.want("ftp://example.com/face.png")
        await asyncio.wait_for(loaded.wait(), 10)
        assert images.ready(url)
        image = images.get(url)
        assert image is not None and image.getpixel((5, 5)) == (9, 99, 199)
        rgba = render(sprites.Avatar("u", "U", AvatarMode.circle, url), 40, 40, images.get)
        assert tuple(rgba[20, 20, :3]) == (9, 99, 199)
        await asyncio.sleep(0.2)
        assert not images.ready("ftp://example.com/face.png")
    finally:
        await images.close()
        await runner.cleanup()


def test_bad_avatar_data_is_refused() -> None:
    with pytest.raises(AvatarError, match="comma"):
        data_uri_bytes("data:image/png;base64")
    with pytest.raises(AvatarError, match="base64"):
        data_uri_bytes("data:image/png;base64,@@@")
    with pytest.raises(AvatarError, match="not an image"):
        decode(b"not a picture")
    assert decode(_png((1, 2, 3), 2000)).size == (512, 512)
