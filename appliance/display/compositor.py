"""The HDMI screen: follows the call layer, lays the screen out, paints it and shows it.

Event-driven: a new frame of a visible tile, a call event or a screen action wakes the
render task, which paints (in a worker thread) only what changed and hands the frame to the
HAL display, at most ``fps`` times a second. Nothing changing means no work: the task
sleeps. Without a screen (none configured, or unplugged) it still composes, for
``snapshot_png``, but at a low rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
from PIL import Image

from appliance.calls import Calls, CallsError, DisplayMode
from appliance.calls.events import CallEvent
from appliance.display.actions import ScreenActions
from appliance.display.avatars import AvatarImages
from appliance.display.layout import Layout, compute_layout
from appliance.display.painter import Painter
from appliance.display.recording import RECORDER_FRAME_SECONDS, RECORDING_SIZE, RecordingCanvas
from appliance.display.render import Rgb, SpriteCache
from appliance.display.scene import LOCAL_VIDEO, Control, HomeInfo, Scene
from appliance.display.state import (
    ScreenState,
    active_session,
    follow_session,
    on_event,
    read_scene,
    update_speaker,
)
from appliance.display.testcard import test_card
from appliance.tasks import TaskSet
from hal.display.base import Display
from hal.errors import HardwareError
from hal.input.base import Pointer, PointerEvent

__all__ = ["RECORDING_SIZE", "Compositor"]

log = logging.getLogger(__name__)

HEADLESS_FPS = 5  # without a screen: enough for display.png and a preview stream
# The self view paints on its own only when no far frame came for this many frame periods.
SELF_VIEW_ALONE_PERIODS = 2
PAINT_SPACING = 0.75  # of a frame period: the least time between two paints
SPEAKER_POLL = 0.2  # seconds between active-speaker checks during a call
IDLE_TICK = 1.0  # seconds between checks outside a call (server connection, notices)
DISPLAY_RETRY = 2.0  # seconds between attempts to reopen an unplugged screen
ERROR_PAUSE = 1.0  # after a painting error, before trying again
MAX_SIZE = (3840, 2160)
MIN_SIZE = (320, 240)


class Compositor:
    """A View for ``Calls`` (``show_video``/``forget``) that drives the screen."""

    def __init__(
        self,
        display: Display | None,
        calls: Calls,
        *,
        size: tuple[int, int] = (1920, 1080),
        fps: int = 30,
    ) -> None:
        if display is not None:
            size = display.size
        _check_size(size)
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 60:
            raise ValueError(f"fps: expected 1 to 60 frames a second, got {fps!r}")
        self._display = display
        self._calls = calls
        self._size = (int(size[0]), int(size[1]))
        self._fps = fps
        self._home = HomeInfo(calls.name, "", ready=False)
        self._state = ScreenState()
        self._images = AvatarImages(on_loaded=self._refresh)
        self._sprites = SpriteCache(self._images.get)
        self._painter = Painter(self._size, self._sprites)
        self._frames: dict[str, av.VideoFrame] = {}
        self._aspects: dict[str, float] = {}
        self._scene = Scene(home=self._home)
        self._layout = compute_layout(self._scene, self._size)
        self._shown_layout = self._layout
        self._wake = asyncio.Event()
        self._wake.set()  # the first frame
        # The recording's own canvas, painted beside the screen while a recorder asks.
        self._recording = RecordingCanvas(self._sprites, wake=self._wake.set)
        self._new_frame = asyncio.Condition()
        self._frame_no = 0
        self._far_frame_at = -math.inf  # when a far end's frame last came
        self._display_ok = False
        self._present_pending = True
        self._resize_to: tuple[int, int] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._actions = TaskSet(log, expected=(CallsError, ValueError))
        self._input = ScreenActions(
            self, calls, self._state, refresh=self._refresh, tasks=self._actions
        )
        self._started = False
        self._subscriptions = contextlib.ExitStack()
        self._card: Rgb | None = None  # the self-test's test card, while it is up

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def scene(self) -> Scene:
        return self._scene

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def shown_layout(self) -> Layout:
        """The layout of what is on screen now (``layout`` may be newer, not painted yet)."""
        return self._shown_layout

    @property
    def frame_number(self) -> int:
        return self._frame_no

    @property
    def painter(self) -> Painter:
        return self._painter

    @property
    def display_connected(self) -> bool:
        return self._display_ok

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compositor")
        if self._display is not None:
            await self._open_display()
        self._refresh()
        # Subscribed now, not when the task first runs: no event in between is missed.
        events = self._subscriptions.enter_context(self._calls.events.subscribe())
        self._tasks = [
            asyncio.create_task(self._render(), name="compositor"),
            asyncio.create_task(self._follow_events(events), name="compositor events"),
            asyncio.create_task(self._tick(), name="compositor tick"),
        ]
        if self._display is not None:
            self._tasks.append(asyncio.create_task(self._watch_display(), name="display watch"))

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        tasks = [*self._tasks, *self._actions]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._subscriptions.close()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True)
        await self._images.close()

    # --- View: called by the call layer for every decoded frame (keep it O(1)) ----------

    def show_video(self, uid: str, frame: Any) -> None:
        width, height = frame.width, frame.height
        if width <= 0 or height <= 0:
            return  # nothing to show
        self._frames[uid] = frame
        aspect = width / height
        if self._aspects.get(uid) != aspect:
            self._aspects[uid] = aspect
            self._refresh()
        elif uid in self._layout.videos and self._paints_for(uid):
            self._wake.set()

    def _paints_for(self, uid: str) -> bool:
        """Whether a new frame of ``uid`` calls for a paint. The self view's frames ride
        along with the far ends' while those come: were they to take paints of their own,
        at the frame-rate limit a far frame would wait for the next paint (half a frame
        period on average) and every other one would be skipped."""
        now = time.monotonic()
        if uid != LOCAL_VIDEO:
            self._far_frame_at = now
            return True
        return now - self._far_frame_at > SELF_VIEW_ALONE_PERIODS / self._fps

    def forget(self, uid: str) -> None:
        self._frames.pop(uid, None)
        if self._aspects.pop(uid, None) is not None:
            self._refresh()

    # --- what others call ----------------------------------------------------------------

    def set_home(self, info: HomeInfo) -> None:
        if not isinstance(info, HomeInfo):
            raise ValueError("info: expected a HomeInfo")
        self._home = info
        self._refresh()

    # What a touch, a click or the API does: ScreenActions.

    def set_mode(self, mode: DisplayMode | str) -> None:
        self._input.set_mode(mode)

    def select(self, uid: str | None) -> None:
        self._input.select(uid)

    def move_tile(self, uid: str, x: int, y: int) -> None:
        self._input.move_tile(uid, x, y)

    def hit_test(self, x: int, y: int) -> str | None:
        return self._input.hit_test(x, y)

    def tap(self, x: int, y: int) -> str | None:
        return self._input.tap(x, y)

    async def press(self, control: Control | str) -> None:
        await self._input.press(control)

    def attach_pointer(self, pointer: Pointer) -> None:
        pointer.start(self.on_pointer)

    def on_pointer(self, event: PointerEvent) -> None:
        self._input.on_pointer(event)

    # --- frames out ----------------------------------------------------------------------

    async def show_test_card(self, seconds: float) -> str | None:
        """Put the test card on the screen for ``seconds`` (the self-test), then the scene
        again. None when the screen took it, else what went wrong."""
        display = self._display
        if display is None:
            return "no screen"
        if self._card is not None:
            return "the test card is already up"
        if not self._display_ok and not await self._open_display(quiet=True):
            return "no screen connected" if not display.connected else "the screen did not open"
        width, height = display.size
        card = test_card(width, height)
        self._card = card
        try:
            await display.show(card)
            await asyncio.sleep(seconds)
        except HardwareError as err:
            self._display_ok = False  # the display watch opens it again
            return err.message
        finally:
            self._card = None
            self._present_pending = True
            self._wake.set()
        return None

    def snapshot_rgb(self) -> Rgb:
        """What is on screen now: (height, width, 3) uint8."""
        return self._painter.snapshot()[1]

    async def snapshot_png(self) -> bytes:
        return await asyncio.to_thread(self._png)

    def _png(self) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.snapshot_rgb()).save(buffer, format="PNG", compress_level=3)
        return buffer.getvalue()

    async def next_frame(self, after: int) -> tuple[int, Rgb]:
        """The first frame numbered above ``after`` (waits for it), as (number, pixels)."""
        if isinstance(after, bool) or not isinstance(after, int):
            raise ValueError(f"after: expected a frame number, got {after!r}")
        async with self._new_frame:
            await self._new_frame.wait_for(lambda: self._frame_no > after)
        return await asyncio.to_thread(self._painter.snapshot)

    def recording_frame(self) -> av.VideoFrame | None:
        """The call for the recorder (``frame_source``): the default layout of everyone,
        without the on-screen buttons, at RECORDING_SIZE, as an rgb24 av.VideoFrame. Frames
        are painted (off the event loop, with the screen's) while they are asked for."""
        return self._recording.frame()

    def recording_layout(self) -> Layout:
        """How the recording lays out the call now (the screen's scene, recorded)."""
        return self._recording.layout(self._scene)

    def current_frame(self) -> av.VideoFrame | None:
        """The screen as an rgb24 av.VideoFrame, for the call recorder (``frame_source``).
        Frames are published by the painter while they are asked for."""
        painter = self._painter
        painter.keep_video_frame_until = time.monotonic() + RECORDER_FRAME_SECONDS
        if painter.video_frame is None:
            self._wake.set()
        return painter.video_frame

    # --- the render task -----------------------------------------------------------------

    def _rate(self) -> int:
        return self._fps if self._display_ok else min(self._fps, HEADLESS_FPS)

    async def _render(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self._wake.wait()
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # at most fps frames; newer frames replace older
            self._wake.clear()
            if self._resize_to is not None:
                self._apply_size(self._resize_to)
            started = loop.time()
            layout = self._layout
            try:
                regions = await loop.run_in_executor(
                    self._executor, self._painter.paint, layout.items, dict(self._frames)
                )
            except Exception:  # a bad frame or a bug must not take the call down with it
                log.exception("painting the screen failed")
                self._painter.invalidate()
                await asyncio.sleep(ERROR_PAUSE)
                self._wake.set()
                continue
            await self._recording.paint(loop, self._executor, self._scene, self._frames)
            # Paced on average, not frame by frame: a far frame that comes a little early
            # (network and loop jitter) is painted at once; waiting for the exact period
            # made each wait longer than the last, until one frame in three was skipped.
            next_at = started + PAINT_SPACING / self._rate()
            self._shown_layout = layout
            if regions:
                async with self._new_frame:
                    self._frame_no = self._painter.frames
                    self._new_frame.notify_all()
            if regions or self._present_pending:
                await self._present()

    async def _present(self) -> None:
        display = self._display
        if display is None or not self._display_ok:
            return
        if self._card is not None:
            self._present_pending = True  # the scene goes up once the card comes down
            return
        try:
            await display.show(self._painter.canvas)
            self._present_pending = False
        except HardwareError as err:
            log.warning("display: %s; composing on, will retry", err.message)
            self._display_ok = False
            self._present_pending = True

    async def _open_display(self, *, quiet: bool = False) -> bool:
        display = self._display
        assert display is not None
        try:
            await display.open()
        except HardwareError as err:
            (log.debug if quiet else log.warning)("display: %s", err.message)
            return False
        size = display.size
        if size != self._size:
            try:
                _check_size(size)
            except ValueError:
                log.warning("display: cannot paint a %s screen", size)
                return False
            log.info("display: the screen is %dx%d now; composing at that size", *size)
            self._resize_to = size
        self._display_ok = True
        self._present_pending = True
        self._wake.set()
        return True

    async def _watch_display(self) -> None:
        while True:
            await asyncio.sleep(DISPLAY_RETRY)
            if not self._display_ok and await self._open_display(quiet=True):
                log.info("display: back")

    def _apply_size(self, size: tuple[int, int]) -> None:
        """Compose at another size (another monitor): only between two paints."""
        self._resize_to = None
        self._size = size
        self._painter = Painter(size, self._sprites, first_frame=self._painter.frames)
        self._state.floating_at = None
        self._layout = compute_layout(self._scene, size)

    async def _follow_events(self, queue: asyncio.Queue[CallEvent]) -> None:
        while True:
            record = await queue.get()
            try:
                on_event(self._calls, self._state, record, time.monotonic())
                self._refresh()
            except Exception:  # the screen must never take the call down
                log.exception("the screen failed to follow %s", record.event.name)

    async def _tick(self) -> None:
        while True:
            in_call = active_session(self._calls) is not None
            await asyncio.sleep(SPEAKER_POLL if in_call else IDLE_TICK)
            try:
                if in_call:
                    update_speaker(self._calls, self._state)
                self._refresh()
            except Exception:  # the screen must never take the call down
                log.exception("the screen failed to follow the call")

    # --- scene -----------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read the state again; a changed scene gets a new layout and wakes the painter.
        Never raises: it runs inside the call layer's frame pumps and event handlers."""
        try:
            self._refresh_scene()
        except Exception:
            log.exception("the screen failed to follow the call")

    def _refresh_scene(self) -> None:
        now = time.monotonic()
        calls = self._calls
        follow_session(calls, self._state, now)
        if self._started and (session := active_session(calls)) is not None:
            for person in (session.me, *session.participants.values()):
                if person is not None:
                    self._images.want(person.avatar)
        scene = read_scene(calls, self._state, self._home, self._aspects, self._images.ready, now)
        if scene != self._scene:
            self._scene = scene
            self._layout = compute_layout(scene, self._size)
            self._wake.set()


def _check_size(size: tuple[int, int]) -> None:
    if (
        not isinstance(size, tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        or not (MIN_SIZE[0] <= size[0] <= MAX_SIZE[0] and MIN_SIZE[1] <= size[1] <= MAX_SIZE[1])
    ):
        raise ValueError(
            f"size: expected (width, height) from {MIN_SIZE} to {MAX_SIZE}, got {size!r}"
        )
