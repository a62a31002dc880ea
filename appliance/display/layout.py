"""The layout: a pure function from a scene and a screen size to what goes where.

``compute_layout`` returns the tiles (who is where, video or avatar), the control bar's
buttons, and a z-ordered paint list of three kinds of items: solid fills, video tiles and
pre-rendered sprites. The compositor paints that list; hit tests use the tiles and buttons.

Where each person's tile goes on the call's stage, by display mode, comes from
``appliance.display.placement``; this module draws the tiles there and everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.calls.settings import AvatarMode
from appliance.display import sprites, theme
from appliance.display.geometry import Colour, Rect, even
from appliance.display.placement import VIDEO_ASPECT, Placement, grid_shape, main_person, place
from appliance.display.scene import Control, ControlBar, Scene, Screen

__all__ = [
    "FillItem",
    "Item",
    "Layout",
    "SpriteItem",
    "Tile",
    "VideoItem",
    "button_spec",
    "compute_layout",
    "grid_shape",
    "main_person",
]

BAR_FRACTION = 0.11  # of the screen's height
PIP_FRACTION = 0.3  # of the screen's width
MIN_SIZE = (64, 64)


@dataclass(frozen=True)
class FillItem:
    rect: Rect
    colour: Colour


@dataclass(frozen=True)
class VideoItem:
    rect: Rect
    video: str  # key of the frames shown here


@dataclass(frozen=True)
class SpriteItem:
    rect: Rect
    spec: sprites.SpriteSpec


Item = FillItem | VideoItem | SpriteItem


@dataclass(frozen=True)
class Tile:
    uid: str
    video: str
    rect: Rect
    live: bool  # showing video (else the avatar)
    floating: bool = False  # the small self view over the spotlight
    main: bool = False  # the single / spotlight participant


@dataclass(frozen=True)
class Layout:
    size: tuple[int, int]
    items: tuple[Item, ...]
    tiles: tuple[Tile, ...] = ()  # in paint order: floating ones last
    buttons: tuple[tuple[Control, Rect], ...] = ()
    call_area: Rect | None = None  # the whole call (full screen, or the PIP window)
    floating_area: Rect | None = None  # where the floating tile may be dragged
    videos: frozenset[str] = field(default=frozenset())  # video keys on screen

    def tile_at(self, x: int, y: int) -> Tile | None:
        for tile in reversed(self.tiles):
            if tile.rect.contains_point(x, y):
                return tile
        return None

    def button_at(self, x: int, y: int) -> Control | None:
        for control, rect in self.buttons:
            if rect.contains_point(x, y):
                return control
        return None

    def tile_of(self, uid: str) -> Tile | None:
        return next((t for t in self.tiles if t.uid == uid), None)


def compute_layout(scene: Scene, size: tuple[int, int]) -> Layout:
    width, height = size
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ValueError(f"size: the screen must be at least {MIN_SIZE}, got {size}")
    builder = _Builder(size)
    screen = Rect(0, 0, width, height)
    if scene.screen is Screen.CALL:
        if scene.pip:
            _home(builder, scene)
            pip = _pip_rect(screen)
            builder.fill(pip.inset(-max(1, round(3 * builder.unit))), theme.PIP_BORDER)
            _call(builder, scene, pip, with_controls=False)
        else:
            _call(builder, scene, screen, with_controls=scene.controls is not None)
    elif scene.screen is Screen.HOME:
        _home(builder, scene)
    elif scene.screen in (Screen.INCOMING, Screen.OUTGOING):
        _ringing(builder, scene)
    elif scene.screen is Screen.CONNECTING:
        _message(builder, "Joining the call…", scene.home.name)
    else:
        notice = scene.notice
        _message(builder, notice.title if notice else "", notice.detail if notice else "")
    if scene.toast:
        _toast(builder, scene.toast)
    if scene.cursor is not None:
        side = max(12, round(32 * builder.unit))
        x, y = scene.cursor
        builder.sprite(Rect(x, y, side, side), sprites.Cursor())
    return builder.build()


def _toast(b: _Builder, text: str) -> None:
    """A passing message along the bottom, above the control bar when there is one."""
    width, height = b.size
    box_h = max(12, round(56 * b.unit))
    bottom = min((rect.y for _, rect in b.buttons), default=height) - round(24 * b.unit)
    if b.call_area is not None and b.call_area.h < height:  # PIP: stay clear of the window
        bottom = min(bottom, b.call_area.y - round(24 * b.unit))
    box_w = round(width * 0.8)
    rect = Rect((width - box_w) // 2, max(0, bottom - box_h), box_w, box_h)
    b.sprite(rect, sprites.Text(text, max(8, round(28 * b.unit)), pill=theme.BANNER_BG))


def _pip_rect(screen: Rect) -> Rect:
    unit = screen.h / 1080
    w = even(screen.w * PIP_FRACTION)
    h = even(w / VIDEO_ASPECT)
    margin = round(32 * unit)
    return Rect(screen.right - w - margin, screen.bottom - h - margin, w, h)


class _Builder:
    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.unit = min(size[0] / 1920, size[1] / 1080)
        self.items: list[Item] = []
        self.tiles: list[Tile] = []
        self.buttons: list[tuple[Control, Rect]] = []
        self.call_area: Rect | None = None
        self.floating_area: Rect | None = None

    def fill(self, rect: Rect, colour: Colour) -> None:
        if not rect.empty:
            self.items.append(FillItem(rect, colour))

    def sprite(self, rect: Rect, spec: sprites.SpriteSpec) -> None:
        if not rect.empty:
            self.items.append(SpriteItem(rect, spec))

    def text(
        self,
        centre_y: float,
        size: float,
        text: str,
        colour: Colour = theme.WHITE,
        dot: Colour | None = None,
    ) -> None:
        """A line of text centred on the screen at ``centre_y`` (a fraction of its height),
        ``size`` pixels high on a 1080-line screen."""
        if not text:
            return
        width, height = self.size
        font = max(8, round(size * self.unit))
        box_h = round(font * 1.5)
        rect = Rect(
            round(width * 0.05), round(height * centre_y - box_h / 2), round(width * 0.9), box_h
        )
        self.sprite(rect, sprites.Text(text, font, colour=colour, dot=dot))

    def build(self) -> Layout:
        return Layout(
            size=self.size,
            items=tuple(self.items),
            tiles=tuple(self.tiles),
            buttons=tuple(self.buttons),
            call_area=self.call_area,
            floating_area=self.floating_area,
            videos=frozenset(i.video for i in self.items if isinstance(i, VideoItem)),
        )


# --- screens outside the call -------------------------------------------------------------


def _home(b: _Builder, scene: Scene) -> None:
    home = scene.home
    b.fill(Rect(0, 0, *b.size), theme.HOME_BG)
    # Everything above 0.65 of the height: the PIP window takes the bottom right corner.
    b.text(0.2, 96, home.name)
    b.text(0.32, 40, home.address, colour=theme.SOFT_TEXT)
    if home.ready:
        b.text(0.41, 36, "Ready for calls", dot=theme.GREEN)
    else:
        b.text(0.41, 36, "Connecting to the session server…", dot=theme.AMBER)
    if home.warning:
        b.text(0.08, 24, home.warning[:120], colour=theme.AMBER)
    if home.selftest:
        colour = theme.SOFT_TEXT if home.selftest_ok else theme.AMBER
        dot = theme.GREEN if home.selftest_ok else theme.AMBER
        b.text(0.465, 22, home.selftest[:120], colour=colour, dot=dot)
    if home.server_note:
        b.text(0.365, 20, home.server_note[:120], colour=theme.SOFT_TEXT)
    if home.api_token:
        b.text(0.5, 28, f"API token: {home.api_token}", colour=theme.AMBER)
    elif home.token_hint:
        b.text(0.5, 24, home.token_hint, colour=theme.SOFT_TEXT)
    if home.tls_fingerprint:
        b.text(0.545, 20, f"TLS SHA-256 {home.tls_fingerprint}", colour=theme.SOFT_TEXT)
    b.text(0.59, 28, "Incoming calls ring here: MUTE answers, END declines", colour=theme.SOFT_TEXT)


def _ringing(b: _Builder, scene: Scene) -> None:
    ringing = scene.ringing
    width, height = b.size
    b.fill(Rect(0, 0, width, height), theme.RINGING_BG)
    if ringing is None:
        return
    if ringing.incoming:
        b.text(0.14, 44, f"Incoming {ringing.call_type} call", colour=theme.SOFT_TEXT)
        hints = [sprites.KeyHint("MUTE", "Answer", theme.GREEN)]
        hints.append(sprites.KeyHint("END", "Decline", theme.RED))
    else:
        b.text(0.14, 44, f"Calling ({ringing.call_type})…", colour=theme.SOFT_TEXT)
        hints = [sprites.KeyHint("END", "Cancel", theme.RED)]
    side = even(260 * b.unit)
    avatar = Rect((width - side) // 2, round(height * 0.38 - side / 2), side, side)
    b.sprite(avatar, sprites.Avatar(ringing.other_uid, ringing.other_name, AvatarMode.circle))
    b.text(0.63, 72, ringing.other_name)
    hint_w, hint_h, spacing = round(380 * b.unit), round(96 * b.unit), round(60 * b.unit)
    total = len(hints) * hint_w + (len(hints) - 1) * spacing
    x = (width - total) // 2
    for hint in hints:
        b.sprite(Rect(x, round(height * 0.80), hint_w, hint_h), hint)
        x += hint_w + spacing


def _message(b: _Builder, title: str, detail: str) -> None:
    b.fill(Rect(0, 0, *b.size), theme.HOME_BG)
    b.text(0.42, 72, title)
    b.text(0.54, 40, detail, colour=theme.SOFT_TEXT)


# --- the call ---------------------------------------------------------------------------


def _call(b: _Builder, scene: Scene, area: Rect, *, with_controls: bool) -> None:
    unit = area.h / 1080
    b.call_area = area
    b.fill(area, theme.CALL_BG)
    stage = area
    controls = scene.controls if with_controls else None
    if controls is not None:
        bar_h = round(area.h * BAR_FRACTION)
        stage = Rect(area.x, area.y, area.w, area.h - bar_h)
    gap = max(2, round(8 * unit))
    placements, b.floating_area = place(scene, stage, gap)
    for placement in placements:
        _tile(b, scene, placement, unit)
    margin = max(2, round(16 * unit))
    if scene.recording:
        b.sprite(
            Rect(stage.x + margin, stage.y + margin, round(130 * unit), round(44 * unit)),
            sprites.RecordingBadge(),
        )
    if scene.timeout_left is not None:
        minutes, seconds = divmod(max(0, scene.timeout_left), 60)
        banner_w = min(stage.w - 2 * margin, round(980 * unit))
        b.sprite(
            Rect(stage.x + (stage.w - banner_w) // 2, stage.y + margin, banner_w, round(56 * unit)),
            sprites.Text(
                f"No one else is here: the call ends in {minutes}:{seconds:02d}",
                max(8, round(28 * unit)),
                pill=theme.BANNER_BG,
            ),
        )
    if controls is not None:
        _control_bar(b, controls, Rect(area.x, stage.bottom, area.w, area.bottom - stage.bottom))


def _tile(b: _Builder, scene: Scene, placement: Placement, unit: float) -> None:
    person, rect = placement.person, placement.rect
    live = person.video_aspect is not None
    b.tiles.append(Tile(person.uid, person.video, rect, live, placement.floating, placement.main))
    if live:
        b.items.append(VideoItem(rect, person.video))
    else:
        b.fill(rect, theme.TILE_BG)
        avatar = sprites.Avatar(person.uid, person.name, scene.avatar_mode, person.avatar_image)
        if scene.avatar_mode is AvatarMode.fullscreen:
            b.sprite(rect, avatar)
        else:
            side = even(min(rect.w, rect.h) * 0.5)
            b.sprite(
                Rect(rect.x + (rect.w - side) // 2, rect.y + (rect.h - side) // 2, side, side),
                avatar,
            )
    label_h = max(12, min(round(rect.h * 0.1), round(44 * unit)))
    pad = max(2, label_h // 3)
    label_w = min(rect.w - 2 * pad, label_h * 14)
    if label_w >= 2 * label_h and rect.h >= 2 * label_h:
        name = f"{person.name} (you)" if person.is_local else person.name
        b.sprite(
            Rect(rect.x + pad, rect.bottom - pad - label_h, label_w, label_h),
            sprites.Label(name, person.muted, person.video_paused or not live),
        )
    speaking = scene.speaking and scene.speaker == person.uid and len(scene.people) > 1
    if speaking or placement.floating:
        thickness = max(2, round((5 if speaking else 2) * unit))
        colour = theme.SPEAKER if speaking else theme.FLOATING_BORDER
        for edge in _outline(rect, thickness):
            b.fill(edge, colour)


def _outline(rect: Rect, t: int) -> list[Rect]:
    return [
        Rect(rect.x, rect.y, rect.w, t),
        Rect(rect.x, rect.bottom - t, rect.w, t),
        Rect(rect.x, rect.y + t, t, rect.h - 2 * t),
        Rect(rect.right - t, rect.y + t, t, rect.h - 2 * t),
    ]


# --- the control bar --------------------------------------------------------------------

_AUDIO_ROUTE_NAMES = {
    "SPEAKER": "Speaker",
    "EARPIECE": "Earpiece",
    "BLUETOOTH": "Bluetooth",
    "HEADPHONES": "Headphones",
}


def button_spec(control: Control, state: ControlBar) -> sprites.Button:
    """How a control bar button looks in this state (what its physical twin would do)."""
    if control is Control.MUTE:
        return sprites.Button(control, "Unmute" if state.muted else "Mute", active=state.muted)
    if control is Control.PAUSE_VIDEO:
        return sprites.Button(
            control,
            "Start video" if state.video_paused else "Stop video",
            active=state.video_paused,
            enabled=not state.audio_only,
        )
    if control is Control.SWITCH_CAMERA:
        return sprites.Button(
            control, "Camera", enabled=state.can_switch_camera and not state.audio_only
        )
    if control is Control.AUDIO_MODE:
        route = _AUDIO_ROUTE_NAMES.get(state.audio_mode or "", "Audio")
        return sprites.Button(
            control, route, enabled=state.audio_mode is not None, detail=state.audio_mode or ""
        )
    if control is Control.SWITCH_TO_VIDEO:
        return sprites.Button(control, "Video call", enabled=state.audio_only)
    if control is Control.RECORDING:
        return sprites.Button(
            control, "Stop rec." if state.recording else "Record", active=state.recording
        )
    return sprites.Button(control, "End")


def _control_bar(b: _Builder, controls: ControlBar, bar: Rect) -> None:
    b.fill(bar, theme.BAR_BG)
    count = len(controls.buttons)
    if count == 0:
        return
    pad = max(2, round(bar.h * 0.06))
    button_h = bar.h - 2 * pad
    spacing = round(button_h * 0.2)
    button_w = min(round(button_h * 1.2), (bar.w - 2 * pad - (count - 1) * spacing) // count)
    x = bar.x + (bar.w - count * button_w - (count - 1) * spacing) // 2
    for control in controls.buttons:
        rect = Rect(x, bar.y + pad, button_w, button_h)
        b.sprite(rect, button_spec(control, controls))
        b.buttons.append((control, rect))
        x += button_w + spacing
