"""Paints a layout's items into one persistent RGB canvas, repainting only what changed.

What changes between two paints: items that appeared or went (their rectangles), and video
tiles with a new frame (their rectangle). Each dirty region is repainted from the topmost
opaque item covering it, upwards through everything over it (labels, outlines, the floating
tile), so a new video frame costs one scale, one copy and a few small blends.

Video is scaled with libswscale in two steps, both fast paths: resize in YUV to the tile's
size, then convert that to RGB without scaling (scaling straight to RGB is several times
slower). Runs in one worker thread at a time; ``lock`` guards the canvas.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from appliance.display import theme
from appliance.display.geometry import Rect, merge_rects
from appliance.display.layout import FillItem, Item, SpriteItem, VideoItem
from appliance.display.render import Rgb, SpriteCache

SCALE_THREADS = 1  # libswscale threads per tile: the call's codecs need the other cores


def rgb_view(frame: av.VideoFrame) -> Rgb:
    """A (height, width, 3) view of an rgb24 frame's pixels, without its row padding."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
    view: Rgb = rows[:, : frame.width * 3].reshape(frame.height, frame.width, 3)
    return view


@dataclass(frozen=True)
class _TileImage:
    source: av.VideoFrame  # the frame it was scaled from
    frame: av.VideoFrame  # the scaled rgb24 frame: owns the pixels
    rgb: Rgb

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


class _Scaler:
    """Per video: libswscale contexts, kept between frames of the same shape."""

    def __init__(self) -> None:
        self._resize = VideoReformatter()
        self._convert = VideoReformatter()

    def __call__(self, frame: av.VideoFrame, width: int, height: int) -> _TileImage:
        if frame.format.name.startswith(("yuv", "yuvj", "nv")):
            small = self._resize.reformat(
                frame, width, height, interpolation="BILINEAR", threads=SCALE_THREADS
            )
            rgb = self._convert.reformat(small, format="rgb24", threads=SCALE_THREADS)
        else:
            rgb = self._resize.reformat(
                frame,
                width,
                height,
                format="rgb24",
                interpolation="BILINEAR",
                threads=SCALE_THREADS,
            )
        return _TileImage(frame, rgb, rgb_view(rgb))


class Painter:
    def __init__(self, size: tuple[int, int], sprites: SpriteCache, first_frame: int = 0) -> None:
        width, height = size
        self.size = size
        self.bounds = Rect(0, 0, width, height)
        self.canvas: Rgb = np.zeros((height, width, 3), np.uint8)
        self.lock = threading.Lock()
        self.frames = first_frame  # paints that changed pixels (numbers the frames)
        self.pixels_painted = 0
        self.cpu_seconds = 0.0  # CPU time this thread spent painting
        # Until then (time.monotonic()), also publish each frame as an av.VideoFrame.
        self.keep_video_frame_until = 0.0
        self.video_frame: av.VideoFrame | None = None
        self._sprites = sprites
        self._items: tuple[Item, ...] | None = None
        self._tiles: dict[str, _TileImage] = {}
        self._scalers: dict[str, _Scaler] = {}

    def paint(self, items: tuple[Item, ...], frames: dict[str, av.VideoFrame]) -> list[Rect]:
        """Bring the canvas up to date with ``items`` and the latest ``frames`` (by video
        key); returns the regions repainted (none: nothing changed)."""
        with self.lock:
            started = time.thread_time()
            try:
                return self._paint(items, frames)
            finally:
                self.cpu_seconds += time.thread_time() - started

    def _paint(self, items: tuple[Item, ...], frames: dict[str, av.VideoFrame]) -> list[Rect]:
        dirty = self._changed_items(items)
        videos = {item.video: item for item in items if isinstance(item, VideoItem)}
        for key, item in videos.items():
            frame = frames.get(key)
            if frame is None:
                continue  # no picture yet (or just gone): keep what the tile showed
            tile = self._tiles.get(key)
            if tile is None or tile.source is not frame or tile.size != (item.rect.w, item.rect.h):
                scaler = self._scalers.setdefault(key, _Scaler())
                self._tiles[key] = scaler(frame, item.rect.w, item.rect.h)
                dirty.append(item.rect)
        for key in [k for k in self._tiles if k not in videos]:
            del self._tiles[key]
            self._scalers.pop(key, None)
        regions = merge_rects(dirty, self.bounds)
        for region in regions:
            self._repaint(region, items)
        self._items = items
        if regions:
            self.frames += 1
            self.pixels_painted += sum(r.area for r in regions)
        if time.monotonic() < self.keep_video_frame_until:
            if regions or self.video_frame is None:
                self.video_frame = av.VideoFrame.from_ndarray(self.canvas, format="rgb24")
        else:
            self.video_frame = None
        return regions

    def invalidate(self) -> None:
        """Repaint everything next time (after an error left the canvas half painted)."""
        with self.lock:
            self._items = None
            self._tiles.clear()

    def snapshot(self) -> tuple[int, Rgb]:
        """(frame number, a copy of the canvas), consistent with each other."""
        with self.lock:
            return self.frames, self.canvas.copy()

    def _changed_items(self, items: tuple[Item, ...]) -> list[Rect]:
        old = self._items
        if old is items:
            return []
        if old is None:
            return [self.bounds]
        if old == items:
            return []
        changed = set(old) ^ set(items)
        if not changed:  # the same items in another order
            return [self.bounds]
        return [item.rect for item in changed]

    def _repaint(self, region: Rect, items: tuple[Item, ...]) -> None:
        over = [item for item in items if item.rect.intersects(region)]
        start = None
        for index in range(len(over) - 1, -1, -1):
            if self._covers(over[index], region):
                start = index
                break
        if start is None:
            self.canvas[region.slices()] = 0
            start = 0
        for item in over[start:]:
            self._draw(item, region)

    def _covers(self, item: Item, region: Rect) -> bool:
        """Whether ``item`` paints every pixel of ``region`` opaquely."""
        if not item.rect.contains(region):
            return False
        if isinstance(item, FillItem):
            return True
        if isinstance(item, VideoItem):
            return item.video in self._tiles
        sprite = self._sprites.get(item.spec, item.rect.w, item.rect.h)
        return sprite.opaque and sprite.bounds(item.rect).contains(region)

    def _draw(self, item: Item, clip: Rect) -> None:
        area = item.rect.intersection(clip)
        if area.empty:
            return
        if isinstance(item, FillItem):
            self.canvas[area.slices()] = item.colour
        elif isinstance(item, VideoItem):
            tile = self._tiles.get(item.video)
            if tile is None:
                self.canvas[area.slices()] = theme.TILE_BG
                return
            rect = item.rect
            source = tile.rgb[
                area.y - rect.y : area.bottom - rect.y, area.x - rect.x : area.right - rect.x
            ]
            self.canvas[area.slices()] = source
        elif isinstance(item, SpriteItem):
            self._sprites.get(item.spec, item.rect.w, item.rect.h).draw(
                self.canvas, item.rect, area
            )
