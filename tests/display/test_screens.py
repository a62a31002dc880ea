"""Screens outside the call, each on the event that brings it (pixels against a reference
painting of the expected screen)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.display import sprites, state, theme
from appliance.display.layout import SpriteItem, compute_layout
from appliance.display.scene import HomeInfo, Notice, Ringing, Scene, Screen
from appliance.events import KitWarning
from hal.camera.pattern import kit_colour
from tests.display.conftest import SCREEN, ScreenKit, distance, median_colour, near, painted

HOME_A = HomeInfo("Room A", "http://127.0.0.1:8080", ready=True)


def text_rect(scene: Scene, text: str) -> Any:
    for item in compute_layout(scene, SCREEN).items:
        spec = item.spec if isinstance(item, SpriteItem) else None
        if isinstance(spec, sprites.Text) and spec.text == text:
            return item.rect
    raise AssertionError(f"no {text!r} on {scene.screen}")


def same(frame: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> bool:
    return frame.shape == reference.shape and bool((frame == reference).all())


async def test_home_then_ringing_then_call_then_ended_then_home(
    screen_kits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "NOTICE_SECONDS", 4.0)
    a: ScreenKit = await screen_kits("room-a", controller=True)
    b: ScreenKit = await screen_kits("room-b", controller=True)
    a.screen.set_home(HOME_A)
    await a.until(lambda f: same(f, painted(Scene(home=HOME_A))))

    # Incoming: the caller, the call type and which button answers or declines.
    assert b.kit.controller is not None and a.kit.controller is not None
    await b.kit.controller.place_call("room-a", "video")
    incoming = Scene(screen=Screen.INCOMING, ringing=Ringing(True, "Room B", "room-b", "video"))
    await a.until(lambda f: same(f, painted(incoming)))
    outgoing = Scene(screen=Screen.OUTGOING, ringing=Ringing(False, "Room A", "room-a", "video"))
    await b.until(lambda f: same(f, painted(outgoing)))

    # The mute button answers, as the screen says: the call fills the screen.
    a.kit.buttons.press("mute")

    def in_call(frame: np.ndarray[Any, Any]) -> bool:
        tile = a.screen.layout.tile_of("room-b")
        return (
            tuple(frame[0, 0]) == theme.CALL_BG
            and tile is not None
            and tile.live
            and distance(median_colour(frame, tile.rect), kit_colour("room-b")) < 30
        )

    await a.until(in_call)

    # The other side ends: "Call ended" with the duration, then home again.
    await b.kit.controller.end()
    title = text_rect(Scene(screen=Screen.NOTICE, notice=Notice("Call ended", "x")), "Call ended")

    candidates = [
        painted(Scene(screen=Screen.NOTICE, notice=Notice("Call ended", f"Duration 0:{s:02d}")))
        for s in range(0, 20)
    ]

    def ended(frame: np.ndarray[Any, Any]) -> bool:
        return any(same(frame, c) for c in candidates)

    frame = await a.until(ended)
    assert near(frame[title.slices()], theme.WHITE, 10).any()  # the title is drawn
    await a.until(lambda f: same(f, painted(Scene(home=HOME_A))))


async def test_a_cancelled_call_is_a_missed_call_and_a_declined_one_says_so(
    screen_kits: Any,
) -> None:
    a: ScreenKit = await screen_kits("room-a", controller=True)
    b: ScreenKit = await screen_kits("room-b", controller=True)
    assert a.kit.controller is not None and b.kit.controller is not None
    call = await b.kit.controller.place_call("room-a", "audio")
    incoming = Scene(screen=Screen.INCOMING, ringing=Ringing(True, "Room B", "room-b", "audio"))
    await a.until(lambda f: same(f, painted(incoming)))
    await b.kit.calls.cancel_call(call.session_id)
    missed = Scene(screen=Screen.NOTICE, notice=Notice("Missed call", "from Room B"))
    await a.until(lambda f: same(f, painted(missed)))

    await b.kit.controller.place_call("room-a", "video")
    await a.until(lambda f: tuple(f[0, 0]) == theme.RINGING_BG)
    a.kit.buttons.press("end")  # the end button declines, as the screen says
    declined = Scene(screen=Screen.NOTICE, notice=Notice("Call declined", "Room A declined"))
    await b.until(lambda f: same(f, painted(declined)))


async def test_the_idle_warning_counts_down_then_the_call_ends(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    await a.kit.join("alone", idle_timeout_period=3)
    banner = next(
        item.rect
        for item in compute_layout(
            Scene(screen=Screen.CALL, timeout_left=3, home=HOME_A), SCREEN
        ).items
        if isinstance(item, SpriteItem) and isinstance(item.spec, sprites.Text)
    )
    shown: list[np.ndarray[Any, Any]] = []

    def warning(frame: np.ndarray[Any, Any]) -> bool:
        if near(frame[banner.slices()], theme.BANNER_BG, 30).mean() > 0.2:  # the pill
            part = frame[banner.slices()].copy()
            if not shown or not (shown[-1] == part).all():
                shown.append(part)
        return len(shown) >= 2  # the countdown moved on

    await a.until(warning)
    timed_out = [
        painted(
            Scene(screen=Screen.NOTICE, notice=Notice("Call ended", f"No one else joined · 0:0{s}"))
        )
        for s in (2, 3, 4)
    ]
    await a.until(lambda f: any(same(f, reference) for reference in timed_out))


async def test_warnings_pass_over_the_screen(
    screen_kits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "TOAST_SECONDS", 1.0)
    a: ScreenKit = await screen_kits("room-a", controller=True)
    a.screen.set_home(HOME_A)
    message = "the camera works again"
    a.kit.calls.events.emit(KitWarning(code="x", device="camera", message=message))
    await a.until(lambda f: same(f, painted(Scene(home=HOME_A, toast=message))))
    await a.until(lambda f: same(f, painted(Scene(home=HOME_A))))

    # With end_needs_hold, a tap on the end button only says how to leave.
    controller = a.kit.controller
    assert controller is not None
    controller.end_needs_hold = True
    monkeypatch.setattr(state, "TOAST_SECONDS", 4.0)
    await controller.start_session("hold")
    await a.until(lambda f: tuple(f[0, 0]) == theme.CALL_BG)
    a.kit.buttons.press("end")
    hint = "Hold the end button to leave the call"

    def hinted(frame: np.ndarray[Any, Any]) -> bool:
        toast = next(
            (
                i.rect
                for i in a.screen.shown_layout.items
                if isinstance(i, SpriteItem)
                and isinstance(i.spec, sprites.Text)
                and i.spec.text == hint
            ),
            None,
        )
        return toast is not None and near(frame[toast.slices()], theme.BANNER_BG, 30).sum() > 300

    await a.until(hinted)
    assert a.kit.calls.session is not None  # still in the call
