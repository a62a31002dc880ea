"""Kits with a screen: the compositor on the fake display, fed by real calls."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import av
import numpy as np
import pytest

from appliance.display.compositor import Compositor
from appliance.display.geometry import Colour, Rect
from appliance.display.layout import Item, Tile, compute_layout
from appliance.display.painter import Painter
from appliance.display.render import SpriteCache
from appliance.display.scene import Scene
from hal.camera.pattern import read_pattern
from hal.display.fake import FakeDisplay
from hal.input.fake import FakePointer
from tests.kits import Kit, KitFactory

SCREEN = (640, 360)  # small: several kits share two cores


class Tee:
    """A View feeding both the test harness's FrameSink and the compositor."""

    def __init__(self, *views: Any) -> None:
        self.views = views

    def show_video(self, uid: str, frame: Any) -> None:
        for view in self.views:
            view.show_video(uid, frame)

    def forget(self, uid: str) -> None:
        for view in self.views:
            view.forget(uid)

    def recording_frame(self) -> Any:
        """The recorder's frame source, as the compositor offers it."""
        return self.views[-1].recording_frame()


@dataclass
class ScreenKit:
    kit: Kit
    screen: Compositor

    @property
    def display(self) -> FakeDisplay:
        return cast(FakeDisplay, self.kit.hardware.display)

    @property
    def pointer(self) -> FakePointer:
        return cast(FakePointer, self.kit.hardware.pointer)

    def shown(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        frame = self.display.last_frame
        assert frame is not None, "nothing was shown yet"
        return frame

    def tile(self, uid: str) -> Tile:
        tile = self.screen.shown_layout.tile_of(uid)
        assert tile is not None, f"no tile for {uid}"
        return tile

    async def until(
        self, check: Callable[[np.ndarray[Any, np.dtype[np.uint8]]], bool], timeout: float = 15.0
    ) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Waits until what the fake screen shows passes ``check``; returns that frame."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = self.display.last_frame
                    if frame is not None and check(frame):
                        return frame
                    await asyncio.sleep(0.03)
        except TimeoutError:
            raise AssertionError(f"the screen never passed {check}") from None


ScreenKits = Callable[..., "asyncio.Future[ScreenKit]"]


@pytest.fixture
async def screen_kits(kits: KitFactory) -> AsyncIterator[Callable[..., Any]]:
    made: list[ScreenKit] = []

    async def make(
        uid: str, size: tuple[int, int] = SCREEN, *, controller: bool = False, **hal: Any
    ) -> ScreenKit:
        display = {"width": size[0], "height": size[1]}
        kit = await kits(uid, controller=controller, display=display, **hal)
        screen = Compositor(kit.hardware.display, kit.calls)
        kit.calls.view = Tee(kit.view, screen)
        if kit.hardware.pointer is not None:
            screen.attach_pointer(kit.hardware.pointer)
        await screen.start()
        made.append(ScreenKit(kit, screen))
        return made[-1]

    try:
        yield make
    finally:
        for screen_kit in made:
            await screen_kit.screen.stop()


# --- pixels ----------------------------------------------------------------------------------


def near(pixels: np.ndarray[Any, Any], colour: Colour, tolerance: float) -> np.ndarray[Any, Any]:
    """Mask of the pixels within ``tolerance`` (Euclidean, RGB) of ``colour``."""
    diff = pixels.astype(np.int32) - np.array(colour, np.int32)
    return cast(np.ndarray[Any, Any], (diff * diff).sum(axis=-1) <= tolerance * tolerance)


def region(frame: np.ndarray[Any, Any], rect: Rect) -> np.ndarray[Any, Any]:
    return frame[rect.slices()]


def outside(frame: np.ndarray[Any, Any], rect: Rect) -> np.ndarray[Any, Any]:
    """The pixels outside ``rect``, flattened."""
    mask = np.ones(frame.shape[:2], bool)
    mask[rect.slices()] = False
    return frame[mask]


def median_colour(frame: np.ndarray[Any, Any], rect: Rect) -> Colour:
    """The median colour of a test pattern's tile between its barcode band (the top sixth)
    and its name label (the bottom tenth): its background (text and the moving bar do not
    sway a median)."""
    middle = Rect(rect.x, rect.y + rect.h // 5, rect.w, rect.h * 3 // 5)
    r, g, b = np.median(region(frame, middle).reshape(-1, 3), axis=0)
    return int(r), int(g), int(b)


def counter_shown(frame: np.ndarray[Any, Any], rect: Rect) -> int | None:
    """The frame counter of the test pattern a tile shows, read off the screen's pixels
    (None when it cannot be read)."""
    shown = av.VideoFrame.from_ndarray(np.ascontiguousarray(region(frame, rect)), format="rgb24")
    info = read_pattern(shown)
    return None if info is None else info.counter


def distance(a: Colour, b: Colour) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


def live_tile_shows(kit: ScreenKit, uid: str, colour: Colour) -> Callable[[Any], bool]:
    """A check for ``kit.until``: ``uid``'s live tile shows ``colour``."""

    def check(frame: np.ndarray[Any, Any]) -> bool:
        tile = kit.screen.shown_layout.tile_of(uid)
        return (
            tile is not None
            and tile.live
            and distance(median_colour(frame, tile.rect), colour) < 30
        )

    return check


@functools.lru_cache(maxsize=64)
def painted(scene: Scene, size: tuple[int, int] = SCREEN) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """What a fresh painter makes of ``scene``: the reference a screen must equal (made
    once per scene: checks poll it)."""
    reference = paint_items(compute_layout(scene, size).items, size)
    reference.flags.writeable = False
    return reference


def paint_items(items: tuple[Item, ...], size: tuple[int, int] = SCREEN) -> np.ndarray[Any, Any]:
    painter = Painter(size, SpriteCache(lambda url: None))
    painter.paint(items, {})
    return painter.canvas
