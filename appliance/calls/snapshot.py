"""The call as those around it see it: the screen, the LEDs and buttons, the REST API.

``CallSnapshot`` is taken from the session when asked (``Calls.call_snapshot``) and never
changes afterwards, so they read the call without reaching into its parts; what they do to
it goes through ``Calls``. ``describe`` is the JSON of GET /api/v1/session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.calls.settings import CallSettings, DisplayMode
from appliance.events import to_jsonable
from appliance.signaling.messages import Participant
from hal.camera.base import CameraInfo

if TYPE_CHECKING:
    from appliance.calls.calls import Calls
    from appliance.calls.session import CallSession
    from appliance.media.peer import LinkStats


class SessionState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDING = "ending"


@dataclass(frozen=True)
class CallSnapshot:
    """One session as it was when the snapshot was taken."""

    key: object  # the same object in every snapshot of one session: tells it from the next
    session_id: str
    state: SessionState
    settings: CallSettings
    me: Participant | None
    participants: Mapping[str, Participant]  # the others, in join order
    audio_only: bool
    pip: bool
    display_mode: DisplayMode
    recording: Path | None  # where the recording in progress goes; None: not recording
    ended_reason: str | None  # once it is ending
    # Our microphone and camera.
    audio_muted: bool
    video_paused: bool
    camera_ok: bool
    camera: CameraInfo | None
    level_dbfs: float  # the microphone's smoothed level
    levels: Mapping[str, float]  # per other participant heard, their smoothed level

    @property
    def active(self) -> bool:
        """In the call, with our place in it known."""
        return self.state is SessionState.ACTIVE and self.me is not None


def snapshot_of(session: CallSession) -> CallSnapshot:
    local = session.local
    recorder = session.recorder
    return CallSnapshot(
        key=session.key,
        session_id=session.session_id,
        state=session.state,
        settings=session.settings,
        me=session.me,
        participants=dict(session.participants),
        audio_only=session.audio_only,
        pip=session.pip,
        display_mode=session.display_mode,
        recording=recorder.path if recorder is not None else None,
        ended_reason=session.ended_reason,
        audio_muted=local.audio_muted,
        video_paused=local.video_paused,
        camera_ok=local.camera_ok,
        camera=local.camera,
        level_dbfs=local.level.dbfs,
        levels={uid: meter.dbfs for uid, meter in session.mixer.levels.items()},
    )


def describe(calls: Calls) -> dict[str, Any]:
    """What GET /api/v1/session returns."""
    session = calls.session if calls.session and calls.session.me else None
    participants: list[dict[str, Any]] = to_jsonable(session.users()) if session else []
    if session is not None:
        received = session.media_stats()
        for participant in participants[1:]:  # ours first, then the others
            participant["media"] = received.get(participant["uid"])
    return {
        "state": calls.state.value,
        "session_id": calls.session.session_id if calls.session else None,
        "participants": participants,
        "local": to_jsonable(session.local_state()) if session else None,
        "call": to_jsonable(calls.active_call),
        "audio_modes": [m.value for m in calls.router.available],
        "audio_mode": calls.router.current.value if calls.router.current else None,
    }


def media_links(calls: Calls) -> dict[str, LinkStats]:
    """Per peer, the current call's connection figures (mesh calls; none otherwise). Read
    apart from the snapshot, which the screen takes many times a second."""
    session = calls.session
    return session.media_links() if session is not None else {}
