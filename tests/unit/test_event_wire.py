"""Every call event leaves the process as the same JSON the events WebSocket has always sent:
its wire name, and its data's keys in their order (the seed's apps read them by name)."""

import json
import typing
from typing import Any

import pytest

from appliance.events import (
    AudioModeChanged,
    Call,
    CallBusy,
    CallEndButtonPressed,
    CallEnded,
    CallEndedMessageReceived,
    CallEvent,
    CallSwitchedToVideo,
    CallSwitchRequestInfo,
    CallUnanswered,
    CallUser,
    Event,
    IncomingCallCancelled,
    IncomingCallReceived,
    KitWarning,
    LocalState,
    LocalStateChanged,
    OutgoingCallAccepted,
    OutgoingCallInitiated,
    OutgoingCallRejected,
    RecordingToggled,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
    SessionStateChanged,
    SessionTimeout,
    SessionTimeoutWarning,
    UserJoined,
    UserLeft,
    UserListChanged,
    UserMuted,
    UserVideoPaused,
)
from hal.audio.base import Route

A = RTCUser("room-a", "Room A", "https://x/a.png", audio_muted=True, audio_only=True)
B = RTCUser("room-b", "Room B")
CALL = Call(
    "s1", CallUser("room-a", "Room A"), CallUser("room-b", "Room B"), "video", "initiated", 1.5
)

# The frames as the events WebSocket sent them before the events were typed.
A_JSON = {
    "uid": "room-a",
    "name": "Room A",
    "avatar": "https://x/a.png",
    "audio_muted": True,
    "video_paused": False,
    "audio_only": True,
}
B_JSON = {
    "uid": "room-b",
    "name": "Room B",
    "avatar": None,
    "audio_muted": False,
    "video_paused": False,
    "audio_only": False,
}
CALL_JSON = {
    "session_id": "s1",
    "initiator": {"uid": "room-a", "name": "Room A"},
    "receiver": {"uid": "room-b", "name": "Room B"},
    "call_type": "video",
    "status": "initiated",
    "initiated_at": 1.5,
    "joined_at": None,
    "ended_at": None,
}
WIRE: list[tuple[Event, str, dict[str, Any]]] = [
    (CallEnded(), "onCallEnded", {}),
    (SessionTimeout(), "onSessionTimeout", {}),
    (CallEndButtonPressed(), "onCallEndButtonPressed", {}),
    (UserJoined(A), "onUserJoined", A_JSON),
    (UserLeft(B), "onUserLeft", B_JSON),
    (UserListChanged((A, B)), "onUserListChanged", {"users": [A_JSON, B_JSON]}),
    (
        AudioModeChanged((Route.SPEAKER, Route.BLUETOOTH)),
        "onAudioModeChanged",
        {"modes": ["SPEAKER", "BLUETOOTH"]},
    ),
    (
        CallSwitchedToVideo(CallSwitchRequestInfo("s1", A, B)),
        "onCallSwitchedToVideo",
        {"session_id": "s1", "request_initiated_by": A_JSON, "request_accepted_by": B_JSON},
    ),
    (
        UserMuted(RTCMutedUser(A, A, True)),
        "onUserMuted",
        {"muted": A_JSON, "muted_by": A_JSON, "is_muted": True},
    ),
    (
        RecordingToggled(RTCRecordingInfo(True, B, "/rec/s1.mp4")),
        "onRecordingToggled",
        {"is_recording_started": True, "user": B_JSON, "path": "/rec/s1.mp4"},
    ),
    (IncomingCallReceived(CALL), "onIncomingCallReceived", CALL_JSON),
    (IncomingCallCancelled(CALL), "onIncomingCallCancelled", CALL_JSON),
    (OutgoingCallAccepted(CALL), "onOutgoingCallAccepted", CALL_JSON),
    (OutgoingCallRejected(CALL), "onOutgoingCallRejected", CALL_JSON),
    (CallEndedMessageReceived(CALL), "onCallEndedMessageReceived", CALL_JSON),
    (CallBusy(CALL), "onCallBusy", CALL_JSON),
    (CallUnanswered(CALL), "onCallUnanswered", CALL_JSON),
    (
        SessionStateChanged(state="active", session_id="s1"),
        "onSessionStateChanged",
        {"state": "active", "session_id": "s1"},
    ),
    (
        LocalStateChanged(LocalState(True, False, "SPEAKER", False, False, "default", False)),
        "onLocalStateChanged",
        {
            "audio_muted": True,
            "video_paused": False,
            "audio_mode": "SPEAKER",
            "recording": False,
            "pip": False,
            "display_mode": "default",
            "audio_only": False,
        },
    ),
    (
        UserVideoPaused(RTCVideoPausedUser(B, True)),
        "onUserVideoPaused",
        {"user": B_JSON, "is_paused": True},
    ),
    (SessionTimeoutWarning(seconds_left=60), "onSessionTimeoutWarning", {"seconds_left": 60}),
    (OutgoingCallInitiated(CALL), "onOutgoingCallInitiated", CALL_JSON),
    (
        KitWarning(code="x", device="camera", message="m"),
        "onWarning",
        {"code": "x", "device": "camera", "message": "m"},
    ),
]


@pytest.mark.parametrize(("event", "name", "data"), WIRE, ids=[name for _, name, _ in WIRE])
def test_each_event_sends_the_json_the_wire_had(
    event: Event, name: str, data: dict[str, Any]
) -> None:
    frame = CallEvent(event, 12.5).to_json()
    # Compared as text: the keys' order is part of what a client may have come to rely on.
    assert json.dumps(frame) == json.dumps({"event": name, "data": data, "ts": 12.5})
    assert type(event).name == name
    assert json.loads(json.dumps(frame)) == frame  # plain JSON types only


def test_every_event_class_is_on_the_wire_once() -> None:
    classes = typing.get_args(Event)
    assert sorted(type(event).__name__ for event, _, _ in WIRE) == sorted(
        cls.__name__ for cls in classes
    )
    names = [cls.name for cls in classes]
    assert len(set(names)) == len(names) == 23
