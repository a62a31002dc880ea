"""Reading the call layer into a Scene, plus the screen's own state (who was picked, where
the small tile was dragged, the active speaker, notices after a call, the idle warning)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from appliance.calls import Calls, DisplayMode, SessionState
from appliance.calls.events import CallEvent
from appliance.calls.snapshot import CallSnapshot
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
from appliance.events import (
    CallBusy,
    CallUnanswered,
    CallUser,
    IncomingCallCancelled,
    KitWarning,
    OutgoingCallRejected,
    SessionTimeoutWarning,
    UserJoined,
    UserLeft,
)

NOTICE_SECONDS = 5.0  # how long "Call ended" and the like stay up
SPEAKING_DBFS = -50.0  # a smoothed level above this is speech (or a tone)
SPEAKER_SWITCH_DB = 3.0  # a new speaker must be this much louder than the current one
SPEAKER_HOLD_POLLS = 2  # ... for this many polls in a row
CURSOR_SECONDS = 4.0  # a mouse pointer hides after this long without moving
TOAST_SECONDS = 4.0  # how long a warning stays on screen


@dataclass
class ScreenState:
    """What the screen remembers beyond the call layer's state. Owned by the compositor,
    changed on the event loop only."""

    focus: str | None = None
    floating_at: tuple[int, int] | None = None
    speaker: str | None = None
    speaking: bool = False
    candidate: str | None = None
    candidate_polls: int = 0
    notice: Notice | None = None
    notice_until: float = 0.0
    timeout_deadline: float | None = None
    session: CallSnapshot | None = None  # the active session being shown, as first seen
    call_started: float = 0.0
    cursor: tuple[int, int] | None = None
    cursor_until: float = 0.0
    toast: str | None = None
    toast_until: float = 0.0

    def show_notice(self, notice: Notice, now: float) -> None:
        self.notice = notice
        self.notice_until = now + NOTICE_SECONDS

    def reset_call(self) -> None:
        self.focus = None
        self.floating_at = None
        self.speaker = None
        self.speaking = False
        self.candidate = None
        self.candidate_polls = 0
        self.timeout_deadline = None


def active_session(calls: Calls) -> CallSnapshot | None:
    session = calls.call_snapshot()
    return session if session is not None and session.active else None


def _key(session: CallSnapshot | None) -> object:
    return session.key if session is not None else None


def follow_session(calls: Calls, state: ScreenState, now: float) -> None:
    """Notice a session starting (apply its single-mode setting) or ending (show how long
    it lasted)."""
    session = active_session(calls)
    if _key(session) is _key(state.session):
        return
    ended = state.session
    if ended is not None:
        duration = _duration(now - state.call_started)
        last = calls.last_ended  # the ended session, as it began to end
        if last is not None and last.key is ended.key and last.ended_reason == "idle-timeout":
            state.show_notice(Notice("Call ended", f"No one else joined · {duration}"), now)
        else:
            state.show_notice(Notice("Call ended", f"Duration {duration}"), now)
    state.reset_call()
    state.session = session
    if session is not None:
        state.call_started = now
        settings = session.settings
        if settings.is_single_mode and session.display_mode is DisplayMode.default:
            calls.set_display_mode(DisplayMode.single, announce=False)


def _duration(seconds: float) -> str:
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def on_event(calls: Calls, state: ScreenState, record: CallEvent, now: float) -> None:
    """Remember what an event means for the screen (warnings, notices, a picked tile that
    left)."""
    match record.event:
        case KitWarning(message=message) if message:
            state.toast = message
            state.toast_until = now + TOAST_SECONDS
        case SessionTimeoutWarning(seconds_left=seconds_left):
            state.timeout_deadline = now + seconds_left
        case UserJoined():
            state.timeout_deadline = None
        case UserLeft(user=user) if user.uid == state.focus:
            state.focus = None
        case OutgoingCallRejected(call=call):
            state.show_notice(Notice("Call declined", f"{_who(call.receiver)} declined"), now)
        case CallBusy(call=call):
            state.show_notice(Notice("Busy", f"{_who(call.receiver)} is in another call"), now)
        case CallUnanswered(call=call) if call.initiator.uid == calls.uid:
            state.show_notice(Notice("No answer", f"{_who(call.receiver)} did not answer"), now)
        case CallUnanswered(call=call) | IncomingCallCancelled(call=call):
            state.show_notice(Notice("Missed call", f"from {_who(call.initiator)}"), now)


def _who(user: CallUser) -> str:
    return user.name or user.uid or "the other kit"


def update_speaker(calls: Calls, state: ScreenState) -> None:
    """Follow the audio levels: the loudest participant above SPEAKING_DBFS becomes the
    active speaker once they have been loudest for a moment (no flicker between two)."""
    session = active_session(calls)
    if session is None or session.me is None:
        return
    levels = {session.me.uid: -200.0 if session.audio_muted else session.level_dbfs}
    for uid, dbfs in session.levels.items():
        participant = session.participants.get(uid)
        levels[uid] = -200.0 if participant is None or participant.muted else dbfs
    loudest = max(levels, key=lambda uid: levels[uid])
    current = state.speaker
    state.speaking = current is not None and levels.get(current, -200.0) > SPEAKING_DBFS
    if levels[loudest] <= SPEAKING_DBFS or loudest == current:
        state.candidate, state.candidate_polls = None, 0
        return
    if current in levels and levels[loudest] < levels[current] + SPEAKER_SWITCH_DB:
        return
    if loudest == state.candidate:
        state.candidate_polls += 1
    else:
        state.candidate, state.candidate_polls = loudest, 1
    if state.candidate_polls >= SPEAKER_HOLD_POLLS or current not in levels:
        state.speaker, state.speaking = loudest, True
        state.candidate, state.candidate_polls = None, 0


def control_bar(calls: Calls, session: CallSnapshot) -> ControlBar | None:
    settings = session.settings
    if not settings.default_layout:
        return None
    buttons = [
        control
        for control, shown in (
            (Control.MUTE, not settings.mute_audio_button_disable),
            (Control.PAUSE_VIDEO, not settings.pause_video_button_disable),
            (Control.SWITCH_CAMERA, not settings.switch_camera_button_disable),
            (Control.AUDIO_MODE, not settings.audio_mode_button_disable),
            (Control.SWITCH_TO_VIDEO, settings.show_switch_to_video_call),
            (Control.RECORDING, settings.show_recording_button),
            (Control.END, not settings.end_call_button_disable),
        )
        if shown
    ]
    route = calls.router.current
    return ControlBar(
        buttons=tuple(buttons),
        muted=session.audio_muted,
        video_paused=session.video_paused,
        audio_mode=route.value if route is not None else None,
        recording=session.recording is not None,
        audio_only=session.audio_only,
        can_switch_camera=len(calls.hardware.cameras) > 1,
    )


def people(
    session: CallSnapshot,
    aspects: Mapping[str, float],
    avatar_ready: Callable[[str | None], bool],
) -> tuple[Person, ...]:
    me = session.me
    assert me is not None
    local_live = not session.audio_only and not session.video_paused and LOCAL_VIDEO in aspects
    out = [
        Person(
            uid=me.uid,
            name=me.name,
            video=LOCAL_VIDEO,
            is_local=True,
            video_aspect=aspects[LOCAL_VIDEO] if local_live else None,
            muted=session.audio_muted,
            video_paused=session.video_paused or not session.camera_ok,
            audio_only=session.audio_only,
            recording=session.recording is not None,
            avatar_image=me.avatar if avatar_ready(me.avatar) else None,
        )
    ]
    for p in session.participants.values():
        live = not (session.audio_only or p.audio_only or p.video_paused) and p.uid in aspects
        out.append(
            Person(
                uid=p.uid,
                name=p.name,
                video=p.uid,
                video_aspect=aspects[p.uid] if live else None,
                muted=p.muted,
                video_paused=p.video_paused,
                audio_only=p.audio_only or session.audio_only,
                recording=p.recording,
                avatar_image=p.avatar if avatar_ready(p.avatar) else None,
            )
        )
    return tuple(out)


def read_scene(
    calls: Calls,
    state: ScreenState,
    home: HomeInfo,
    aspects: Mapping[str, float],
    avatar_ready: Callable[[str | None], bool],
    now: float,
) -> Scene:
    home = replace(home, ready=home.ready and calls.connected)
    cursor = state.cursor if state.cursor is not None and now < state.cursor_until else None
    toast = state.toast if state.toast is not None and now < state.toast_until else None
    snapshot = calls.call_snapshot()
    session = snapshot if snapshot is not None and snapshot.active else None
    if session is not None:
        everyone = people(session, aspects, avatar_ready)
        deadline = state.timeout_deadline
        return Scene(
            screen=Screen.CALL,
            home=home,
            people=everyone,
            mode=session.display_mode,
            avatar_mode=session.settings.avatar_mode,
            focus=state.focus,
            speaker=state.speaker,
            speaking=state.speaking,
            floating_at=state.floating_at,
            pip=session.pip,
            controls=control_bar(calls, session),
            recording=any(p.recording for p in everyone),
            timeout_left=math.ceil(deadline - now)
            if deadline is not None and deadline > now
            else None,
            cursor=cursor,
            toast=toast,
        )
    if snapshot is not None and snapshot.state is SessionState.CONNECTING:
        return Scene(screen=Screen.CONNECTING, home=home, cursor=cursor, toast=toast)
    call = calls.active_call
    if calls.state is SessionState.RINGING and call is not None:
        incoming = call.receiver.uid == calls.uid
        other = call.initiator if incoming else call.receiver
        return Scene(
            screen=Screen.INCOMING if incoming else Screen.OUTGOING,
            home=home,
            ringing=Ringing(incoming, other.name, other.uid, call.call_type),
            cursor=cursor,
            toast=toast,
        )
    if state.notice is not None and now < state.notice_until:
        return Scene(
            screen=Screen.NOTICE, home=home, notice=state.notice, cursor=cursor, toast=toast
        )
    return Scene(screen=Screen.HOME, home=home, cursor=cursor, toast=toast)
