"""What a touch, a click, a control bar button or the API does to the call screen: pick a
tile, drag the floating one, change the display mode, press a button as its physical twin
would. The screen's state changes here; the compositor repaints what follows from it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance.calls import Calls, CallsError, DisplayMode
from appliance.calls.errors import no_active_session
from appliance.calls.snapshot import CallSnapshot
from appliance.display.layout import Layout
from appliance.display.scene import LOCAL_VIDEO, Control, Scene, Screen
from appliance.display.state import CURSOR_SECONDS, ScreenState, active_session
from appliance.tasks import TaskSet
from hal.input.base import PointerAction, PointerEvent

DRAG_THRESHOLD = 0.015  # of the screen's width: a press that moves less is a tap


class ScreenView(Protocol):
    """What is on the screen now, as the compositor has it."""

    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def scene(self) -> Scene: ...
    @property
    def layout(self) -> Layout: ...


@dataclass
class _Gesture:
    x: int
    y: int
    grabbed: str | None  # uid of the floating tile being dragged
    offset: tuple[int, int]  # where in that tile it was grabbed
    moved: bool = False


class ScreenActions:
    def __init__(
        self,
        screen: ScreenView,
        calls: Calls,
        state: ScreenState,
        *,
        refresh: Callable[[], None],
        tasks: TaskSet,
    ) -> None:
        """``refresh``: the screen's state changed; ``tasks``: where a tap's call actions
        run (the compositor cancels them when it stops)."""
        self._screen = screen
        self._calls = calls
        self._state = state
        self._refresh = refresh
        self._tasks = tasks
        self._gesture: _Gesture | None = None

    def set_mode(self, mode: DisplayMode | str) -> None:
        mode = _display_mode(mode)
        session = self._session()
        if session.display_mode is not mode:
            self._calls.set_display_mode(mode)
        self._refresh()

    def select(self, uid: str | None) -> None:
        """Pick the participant for the spotlight or the single view (None: follow the
        active speaker again). In the grid, picking a tile switches to the spotlight."""
        session = self._session()
        if not session.settings.enable_video_tile_click:
            raise CallsError("tile-click-disabled", "picking a tile is disabled for this call")
        self._state.focus = None if uid is None else _participant(session, uid)
        if uid is not None and session.display_mode is DisplayMode.default:
            self.set_mode(DisplayMode.spotlight)
        self._refresh()

    def move_tile(self, uid: str, x: int, y: int) -> None:
        """Move the floating small tile so its top left corner is at (x, y); it stays within
        the spotlight area."""
        _check_point(x, y, self._screen.size)
        session = self._session()
        if not session.settings.enable_draggable_video_tile:
            raise CallsError("tile-drag-disabled", "dragging tiles is disabled for this call")
        uid = _participant(session, uid)
        tile = self._screen.layout.tile_of(uid)
        if tile is None or not tile.floating or self._screen.scene.pip:
            raise CallsError("tile-not-floating", f"{uid} is not in the floating tile now")
        self._state.floating_at = (x, y)
        self._refresh()

    def hit_test(self, x: int, y: int) -> str | None:
        """The uid of the participant whose tile is at (x, y), if any."""
        _check_point(x, y, self._screen.size)
        if self._screen.scene.screen is not Screen.CALL:
            return None
        tile = self._screen.layout.tile_at(x, y)
        return tile.uid if tile is not None else None

    def tap(self, x: int, y: int) -> str | None:
        """What a touch (or click) at (x, y) does: press a control bar button, pick a tile
        (tap the picked one again to let go), or bring the PIP window back. Returns what was
        tapped: a control's name, a uid, "pip", or None."""
        _check_point(x, y, self._screen.size)
        session = active_session(self._calls)
        scene, layout = self._screen.scene, self._screen.layout
        if session is None or scene.screen is not Screen.CALL:
            return None
        if scene.pip:
            if layout.call_area is not None and layout.call_area.contains_point(x, y):
                self._tasks.spawn(self._calls.exit_pip_mode(), "exit pip")
                return "pip"
            return None
        control = layout.button_at(x, y)
        if control is not None:
            self._tasks.spawn(self.press(control), f"button {control.value}")
            return control.value
        tile = layout.tile_at(x, y)
        if tile is None or not session.settings.enable_video_tile_click:
            return None
        self.select(None if tile.main and self._state.focus == tile.uid else tile.uid)
        return tile.uid

    async def press(self, control: Control | str) -> None:
        """Do what a control bar button does, as its physical twin would."""
        try:
            control = Control(control)
        except ValueError:
            choices = ", ".join(c.value for c in Control)
            raise ValueError(f"control: expected one of {choices}, got {control!r}") from None
        session = self._session()
        controls = self._screen.scene.controls
        if controls is None or control not in controls.buttons:
            raise CallsError("button-hidden", f"the {control.value} button is not shown")
        calls = self._calls
        if control is Control.MUTE:
            await calls.mute_audio(not session.audio_muted)
        elif control is Control.PAUSE_VIDEO:
            await calls.pause_video(not session.video_paused)
        elif control is Control.SWITCH_CAMERA:
            await calls.switch_camera()
        elif control is Control.AUDIO_MODE:
            routes = calls.router.available
            if not routes:
                raise CallsError("audio-mode-unavailable", "there is no audio route")
            current = calls.router.current
            index = routes.index(current) if current in routes else -1
            await calls.set_audio_mode(routes[(index + 1) % len(routes)])
        elif control is Control.SWITCH_TO_VIDEO:
            await calls.switch_to_video_call()
        elif control is Control.RECORDING:
            if session.recording is None:
                await calls.start_recording()
            else:
                await calls.stop_recording()
        else:
            calls.press_end_call_button()

    def on_pointer(self, event: PointerEvent) -> None:
        """A touch screen or mouse event: taps, and drags of the floating tile."""
        width, height = self._screen.size
        x = min(width - 1, max(0, round(event.x * (width - 1))))
        y = min(height - 1, max(0, round(event.y * (height - 1))))
        if event.cursor:
            self._state.cursor = (x, y)
            self._state.cursor_until = time.monotonic() + CURSOR_SECONDS
            self._refresh()
        gesture = self._gesture
        scene = self._screen.scene
        if event.action is PointerAction.DOWN:
            tile = self._screen.layout.tile_at(x, y) if scene.screen is Screen.CALL else None
            floating = tile is not None and tile.floating and not scene.pip
            self._gesture = _Gesture(
                x,
                y,
                tile.uid if floating and tile is not None else None,
                (x - tile.rect.x, y - tile.rect.y) if tile is not None else (0, 0),
            )
        elif event.action is PointerAction.MOVE and gesture is not None:
            if abs(x - gesture.x) + abs(y - gesture.y) > DRAG_THRESHOLD * width:
                gesture.moved = True
            if gesture.moved and gesture.grabbed is not None:
                with contextlib.suppress(CallsError, ValueError):
                    self.move_tile(
                        gesture.grabbed,
                        max(0, x - gesture.offset[0]),
                        max(0, y - gesture.offset[1]),
                    )
        elif event.action is PointerAction.UP and gesture is not None:
            self._gesture = None
            if not gesture.moved:
                with contextlib.suppress(CallsError, ValueError):
                    self.tap(gesture.x, gesture.y)

    def _session(self) -> CallSnapshot:
        session = active_session(self._calls)
        if session is None:
            raise no_active_session()
        return session


def _check_point(x: int, y: int, size: tuple[int, int]) -> None:
    for name, value, limit in (("x", x, size[0]), ("y", y, size[1])):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected whole pixels, got {value!r}")
        if not 0 <= value < limit:
            raise ValueError(f"{name}: must be 0 to {limit - 1}, got {value}")


def _display_mode(mode: DisplayMode | str) -> DisplayMode:
    if isinstance(mode, DisplayMode):
        return mode
    if isinstance(mode, str):
        with contextlib.suppress(ValueError):
            return DisplayMode(mode.lower())
    raise ValueError(f"mode: expected one of default, single, spotlight, got {mode!r}")


def _participant(session: CallSnapshot, uid: str) -> str:
    """The uid of a participant of ``session``; LOCAL_VIDEO and the kit's own uid both mean
    the kit itself."""
    if not isinstance(uid, str):
        raise ValueError(f"uid: expected a participant's uid, got {uid!r}")
    me = session.me
    if me is not None and uid in (LOCAL_VIDEO, me.uid):
        return me.uid
    if uid in session.participants:
        return uid
    raise ValueError(f"uid: no participant {uid!r} in this call")
