"""Call events as the kit's parts tell them to one another: one frozen dataclass per event,
each with the name the seed's apps and the events WebSocket know it by, and the JSON that
leaves the process (``CallEvent.to_json``), built in one place.

This module sits below the audio layer (see ``[tool.importlinter]``) because the ringer
follows these events too; the hub that delivers them is ``appliance.calls.events``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Literal, TypeAlias

from hal.audio.base import Route as AudioMode

CallType = Literal["audio", "video"]
CallStatus = Literal["initiated", "ongoing", "rejected", "cancelled", "busy", "unanswered", "ended"]


# --- what the events are about (the seed's types) -------------------------------------


@dataclass(frozen=True)
class RTCUser:
    uid: str
    name: str
    avatar: str | None = None
    audio_muted: bool = False
    video_paused: bool = False
    audio_only: bool = False


@dataclass(frozen=True)
class RTCMutedUser:
    muted: RTCUser  # whose microphone changed
    muted_by: RTCUser  # who changed it (today always the same user)
    is_muted: bool


@dataclass(frozen=True)
class CallSwitchRequestInfo:
    session_id: str
    request_initiated_by: RTCUser
    request_accepted_by: RTCUser | None = None


@dataclass(frozen=True)
class RTCRecordingInfo:
    is_recording_started: bool
    user: RTCUser
    path: str | None = None  # set on the kit that records


@dataclass(frozen=True)
class RTCVideoPausedUser:
    user: RTCUser
    is_paused: bool


@dataclass(frozen=True)
class CallUser:
    uid: str
    name: str


@dataclass(frozen=True)
class Call:
    """A ringing-flow call, as the session server keeps it."""

    session_id: str
    initiator: CallUser
    receiver: CallUser
    call_type: CallType
    status: CallStatus
    initiated_at: float
    joined_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class LocalState:
    """The kit's own side of the session (GET /api/v1/session's ``local``)."""

    audio_muted: bool
    video_paused: bool
    audio_mode: str | None  # an AudioMode's value, None without an output
    recording: bool
    pip: bool
    display_mode: str  # a DisplayMode's value
    audio_only: bool


# --- the seed's CallsEventsDelegate events ----------------------------------------------
# ``method`` is the delegate's method; it takes the event's fields in order.


@dataclass(frozen=True)
class CallEnded:
    name: ClassVar[str] = "onCallEnded"
    method: ClassVar[str] = "on_call_ended"


@dataclass(frozen=True)
class SessionTimeout:
    name: ClassVar[str] = "onSessionTimeout"
    method: ClassVar[str] = "on_session_timeout"


@dataclass(frozen=True)
class CallEndButtonPressed:
    name: ClassVar[str] = "onCallEndButtonPressed"
    method: ClassVar[str] = "on_call_end_button_pressed"


@dataclass(frozen=True)
class UserJoined:
    name: ClassVar[str] = "onUserJoined"
    method: ClassVar[str] = "on_user_joined"
    user: RTCUser


@dataclass(frozen=True)
class UserLeft:
    name: ClassVar[str] = "onUserLeft"
    method: ClassVar[str] = "on_user_left"
    user: RTCUser


@dataclass(frozen=True)
class UserListChanged:
    name: ClassVar[str] = "onUserListChanged"
    method: ClassVar[str] = "on_user_list_changed"
    users: tuple[RTCUser, ...]  # ours first


@dataclass(frozen=True)
class AudioModeChanged:
    """The audio modes on offer changed (a headset came or went)."""

    name: ClassVar[str] = "onAudioModeChanged"
    method: ClassVar[str] = "on_audio_mode_changed"
    modes: tuple[AudioMode, ...]


@dataclass(frozen=True)
class CallSwitchedToVideo:
    name: ClassVar[str] = "onCallSwitchedToVideo"
    method: ClassVar[str] = "on_call_switched_to_video"
    info: CallSwitchRequestInfo


@dataclass(frozen=True)
class UserMuted:
    name: ClassVar[str] = "onUserMuted"
    method: ClassVar[str] = "on_user_muted"
    change: RTCMutedUser


@dataclass(frozen=True)
class RecordingToggled:
    name: ClassVar[str] = "onRecordingToggled"
    method: ClassVar[str] = "on_recording_toggled"
    info: RTCRecordingInfo


DelegateEvent: TypeAlias = (
    CallEnded
    | SessionTimeout
    | CallEndButtonPressed
    | UserJoined
    | UserLeft
    | UserListChanged
    | AudioModeChanged
    | CallSwitchedToVideo
    | UserMuted
    | RecordingToggled
)


# --- the ringing flow's CallListener events ---------------------------------------------
# ``method`` is the listener's method; it takes the call.


@dataclass(frozen=True)
class IncomingCallReceived:
    name: ClassVar[str] = "onIncomingCallReceived"
    method: ClassVar[str] = "on_incoming_call_received"
    call: Call


@dataclass(frozen=True)
class IncomingCallCancelled:
    name: ClassVar[str] = "onIncomingCallCancelled"
    method: ClassVar[str] = "on_incoming_call_cancelled"
    call: Call


@dataclass(frozen=True)
class OutgoingCallAccepted:
    name: ClassVar[str] = "onOutgoingCallAccepted"
    method: ClassVar[str] = "on_outgoing_call_accepted"
    call: Call


@dataclass(frozen=True)
class OutgoingCallRejected:
    name: ClassVar[str] = "onOutgoingCallRejected"
    method: ClassVar[str] = "on_outgoing_call_rejected"
    call: Call


@dataclass(frozen=True)
class CallEndedMessageReceived:
    name: ClassVar[str] = "onCallEndedMessageReceived"
    method: ClassVar[str] = "on_call_ended_message_received"
    call: Call


@dataclass(frozen=True)
class CallBusy:
    name: ClassVar[str] = "onCallBusy"
    method: ClassVar[str] = "on_call_busy"
    call: Call


@dataclass(frozen=True)
class CallUnanswered:
    name: ClassVar[str] = "onCallUnanswered"
    method: ClassVar[str] = "on_call_unanswered"
    call: Call


ListenerEvent: TypeAlias = (
    IncomingCallReceived
    | IncomingCallCancelled
    | OutgoingCallAccepted
    | OutgoingCallRejected
    | CallEndedMessageReceived
    | CallBusy
    | CallUnanswered
)


# --- callbox's own events, beyond the seed's --------------------------------------------


@dataclass(frozen=True)
class SessionStateChanged:
    name: ClassVar[str] = "onSessionStateChanged"
    state: str  # a SessionState's value: idle, ringing, connecting, active, ending
    session_id: str | None


@dataclass(frozen=True)
class LocalStateChanged:
    name: ClassVar[str] = "onLocalStateChanged"
    state: LocalState


@dataclass(frozen=True)
class UserVideoPaused:
    name: ClassVar[str] = "onUserVideoPaused"
    change: RTCVideoPausedUser


@dataclass(frozen=True)
class SessionTimeoutWarning:
    name: ClassVar[str] = "onSessionTimeoutWarning"
    seconds_left: int


@dataclass(frozen=True)
class OutgoingCallInitiated:
    name: ClassVar[str] = "onOutgoingCallInitiated"
    call: Call


@dataclass(frozen=True)
class KitWarning:
    """Something the people in the room or looking after the kit should know (a device
    failed or came back, the server refused something)."""

    name: ClassVar[str] = "onWarning"
    code: str
    device: str  # camera, audio, storage, server, network, buttons, ...
    message: str


OwnEvent: TypeAlias = (
    SessionStateChanged
    | LocalStateChanged
    | UserVideoPaused
    | SessionTimeoutWarning
    | OutgoingCallInitiated
    | KitWarning
)

Event: TypeAlias = DelegateEvent | ListenerEvent | OwnEvent


# --- the wire form ----------------------------------------------------------------------


@dataclass(frozen=True)
class CallEvent:
    """An event as the hub delivered it, with when it happened."""

    event: Event
    ts: float

    def to_json(self) -> dict[str, Any]:
        """The events WebSocket's frame."""
        return {"event": self.event.name, "data": wire_data(self.event), "ts": self.ts}


def wire_data(event: Event) -> dict[str, Any]:
    """The event's JSON ``data``, with the keys the seed's apps have always read: an event
    about one object (a user, a call, a change) sends that object's fields; the others send
    their own fields."""
    match event:
        case UserJoined(user=user) | UserLeft(user=user):
            return _fields(user)
        case UserMuted(change=muted):
            return _fields(muted)
        case UserVideoPaused(change=paused):
            return _fields(paused)
        case CallSwitchedToVideo(info=switch):
            return _fields(switch)
        case RecordingToggled(info=recording):
            return _fields(recording)
        case LocalStateChanged(state=state):
            return _fields(state)
        case (
            IncomingCallReceived(call=call)
            | IncomingCallCancelled(call=call)
            | OutgoingCallAccepted(call=call)
            | OutgoingCallRejected(call=call)
            | CallEndedMessageReceived(call=call)
            | CallBusy(call=call)
            | CallUnanswered(call=call)
            | OutgoingCallInitiated(call=call)
        ):
            return _fields(call)
        case _:
            return _fields(event)


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}


def to_jsonable(value: Any) -> Any:
    """A dataclass, enum, list or tuple as JSON's types (field order kept)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value
