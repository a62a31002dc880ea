"""The call as a recording shows it: the default layout of everyone, without the on-screen
buttons, picture-in-picture, pointer or passing messages, at the recorder's size. Painted
beside the screen, off the event loop, only while a recorder asks for frames."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import av

from appliance.calls import DisplayMode
from appliance.display.layout import Layout, compute_layout
from appliance.display.painter import Painter
from appliance.display.render import SpriteCache
from appliance.display.scene import Scene

log = logging.getLogger(__name__)

RECORDING_SIZE = (640, 360)
RECORDER_FRAME_SECONDS = 2.0  # keep publishing av.VideoFrames this long after a request


class RecordingCanvas:
    def __init__(self, sprites: SpriteCache, *, wake: Callable[[], None]) -> None:
        """``wake``: asks the compositor for a paint (the first frame a recorder wants)."""
        self._sprites = sprites
        self._wake = wake
        self._painter: Painter | None = None  # while a recorder asks
        self._layout: tuple[Scene, Layout] | None = None

    def frame(self) -> av.VideoFrame | None:
        """The latest frame, as an rgb24 av.VideoFrame; asking keeps them coming."""
        if self._painter is None:
            self._painter = Painter(RECORDING_SIZE, self._sprites)
        painter = self._painter
        painter.keep_video_frame_until = time.monotonic() + RECORDER_FRAME_SECONDS
        if painter.video_frame is None:
            self._wake()
        return painter.video_frame

    def layout(self, scene: Scene) -> Layout:
        """How the recording lays out the screen's ``scene``."""
        cached = self._layout
        if cached is not None and cached[0] is scene:
            return cached[1]
        recorded = replace(
            scene,
            mode=DisplayMode.default,
            focus=None,
            floating_at=None,
            pip=False,
            controls=None,
            timeout_left=None,
            cursor=None,
            toast=None,
        )
        layout = compute_layout(recorded, RECORDING_SIZE)
        self._layout = (scene, layout)
        return layout

    async def paint(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor | None,
        scene: Scene,
        frames: dict[str, av.VideoFrame],
    ) -> None:
        """Paints the latest ``frames`` (a copy: the worker thread paints while new frames
        come), or lets the canvas go once no recorder asked for a while."""
        painter = self._painter
        if painter is None:
            return
        if time.monotonic() >= painter.keep_video_frame_until:
            self._painter = None  # the recording ended: free its canvas
            return
        try:
            items = self.layout(scene).items
            await loop.run_in_executor(executor, painter.paint, items, dict(frames))
        except Exception:  # the recording must not take the screen down with it
            log.exception("painting the recording failed")
            painter.invalidate()
