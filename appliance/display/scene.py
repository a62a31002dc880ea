"""What the screen should show, as plain data: the input of the layout.

``appliance.display.state`` reads it off the call layer; tests and the benchmark build it
directly. Everything here is immutable and compares by value, so an unchanged scene is
recognised and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from appliance.calls.settings import AvatarMode, DisplayMode

LOCAL_VIDEO = "local"  # the key under which the call layer shows the self view


class Screen(StrEnum):
    HOME = "home"  # idle: kit name, address, ready state
    CONNECTING = "connecting"  # joining a session
    INCOMING = "incoming"  # an incoming call rings
    OUTGOING = "outgoing"  # our call rings at the other end
    CALL = "call"  # in a session (full screen, or in a corner over home when pip)
    NOTICE = "notice"  # a short message after a call: ended, declined, missed


class Control(StrEnum):
    """The control bar's buttons, in the order they appear."""

    MUTE = "mute"
    PAUSE_VIDEO = "pause_video"
    SWITCH_CAMERA = "switch_camera"
    AUDIO_MODE = "audio_mode"
    SWITCH_TO_VIDEO = "switch_to_video"
    RECORDING = "recording"
    END = "end"


@dataclass(frozen=True)
class HomeInfo:
    """The idle screen's facts: the kit's name, where its API is, whether it can take calls,
    the API token while it is freshly created (shown once so it can be copied), and the
    SHA-256 fingerprint of the API's TLS certificate (to check a browser's warning against)."""

    name: str
    address: str
    ready: bool
    api_token: str | None = None
    tls_fingerprint: str | None = None
    # Where to find the API token once it is no longer shown (None: say nothing).
    token_hint: str | None = None
    # A problem the operator must fix (REST config overrides that did not load...).
    warning: str | None = None
    # The hardware self-test's outcome in a line, and whether every check passed.
    selftest: str | None = None
    selftest_ok: bool = True
    # Where the kit's session server came from when it was found on the LAN.
    server_note: str | None = None


@dataclass(frozen=True)
class Person:
    """One participant as the screen shows them."""

    uid: str
    name: str
    video: str  # key of this person's frames (LOCAL_VIDEO for the self view)
    is_local: bool = False
    video_aspect: float | None = None  # width / height of live video; None: show the avatar
    muted: bool = False
    video_paused: bool = False
    audio_only: bool = False
    recording: bool = False
    avatar_image: str | None = None  # URL of an avatar image that is loaded and ready


@dataclass(frozen=True)
class ControlBar:
    buttons: tuple[Control, ...]  # the ones the call settings enable
    muted: bool = False
    video_paused: bool = False
    audio_mode: str | None = None  # the current route ("SPEAKER"...)
    recording: bool = False
    audio_only: bool = False
    can_switch_camera: bool = True


@dataclass(frozen=True)
class Ringing:
    incoming: bool
    other_name: str  # the caller (incoming) or the callee (outgoing)
    other_uid: str
    call_type: str  # "audio" | "video"


@dataclass(frozen=True)
class Notice:
    title: str
    detail: str = ""


@dataclass(frozen=True)
class Scene:
    screen: Screen = Screen.HOME
    home: HomeInfo = HomeInfo("callbox", "", ready=False)
    people: tuple[Person, ...] = ()  # the kit itself first
    mode: DisplayMode = DisplayMode.default
    avatar_mode: AvatarMode = AvatarMode.circle
    focus: str | None = None  # uid picked for the spotlight / single view
    speaker: str | None = None  # uid of the active speaker (the last one who spoke)
    speaking: bool = False  # the active speaker is speaking now (their tile is outlined)
    floating_at: tuple[int, int] | None = None  # where the small tile was dragged (top left)
    pip: bool = False
    controls: ControlBar | None = None  # None: no default layout, no control bar
    recording: bool = False  # someone in the call records it
    timeout_left: int | None = None  # seconds until the idle timeout ends the call
    ringing: Ringing | None = None
    notice: Notice | None = None
    cursor: tuple[int, int] | None = None  # a mouse pointer's position, while shown
    toast: str | None = None  # a passing message ("Hold the end button to leave the call")
