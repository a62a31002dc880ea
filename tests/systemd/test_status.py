"""STATUS= texts and journal call lines from call events, as the event hub emits them."""

from typing import Any

from appliance.calls import CallEvent
from appliance.systemd.status import CallState, apply_event, describe_call_state


def event(event_name: str, /, **data: Any) -> CallEvent:
    return CallEvent(event_name, data, 0.0)


def user(uid: str, name: str) -> dict[str, Any]:
    return {"uid": uid, "name": name, "avatar": None, "audio_muted": False}


def call_data(initiator: str, receiver: str) -> dict[str, Any]:
    return {
        "session_id": "s1",
        "initiator": {"uid": initiator.lower(), "name": initiator},
        "receiver": {"uid": receiver.lower(), "name": receiver},
        "call_type": "video",
        "status": "initiated",
    }


def replay(call: CallState, *events: CallEvent) -> list[str]:
    lines = [apply_event(call, e) for e in events]
    return [line for line in lines if line is not None]


def test_an_incoming_call_from_ringing_to_the_end() -> None:
    call = CallState("lobby")
    assert describe_call_state(call) == "Idle"
    lines = replay(
        call,
        event("onIncomingCallReceived", **call_data("Porch", "Lobby")),
        event("onSessionStateChanged", state="ringing", session_id="s1"),
    )
    assert lines == ["Ringing: call from Porch"]
    assert call.session_id == "s1"
    lines = replay(
        call,
        event("onSessionStateChanged", state="connecting", session_id="s1"),
        event("onSessionStateChanged", state="active", session_id="s1"),
        event("onUserJoined", **user("porch", "Porch")),
        event("onUserListChanged", users=[user("lobby", "Lobby"), user("porch", "Porch")]),
    )
    assert lines == [
        "Connecting to the call",
        "In call, waiting for others to join",
        "Porch joined",
        "In call with 1 participant (Porch)",
    ]
    assert describe_call_state(call) == "In call with 1 participant (Porch)"
    lines = replay(
        call,
        event("onUserLeft", **user("porch", "Porch")),
        event("onUserListChanged", users=[user("lobby", "Lobby")]),
        event("onSessionStateChanged", state="ending", session_id="s1"),
        event("onSessionStateChanged", state="idle", session_id=None),
    )
    assert lines == [
        "Porch left",
        "In call, waiting for others to join",
        "Ending the call",
        "call ended",
    ]
    assert describe_call_state(call) == "Idle"


def test_an_outgoing_call_that_nobody_answers() -> None:
    call = CallState("lobby")
    lines = replay(
        call,
        event("onOutgoingCallInitiated", **call_data("Lobby", "Porch")),
        event("onSessionStateChanged", state="ringing", session_id="s1"),
        event("onCallUnanswered", **call_data("Lobby", "Porch")),
        event("onSessionStateChanged", state="idle", session_id=None),
    )
    assert lines == ["Ringing: calling Porch", "ringing ended"]


def test_a_big_call_names_the_first_few() -> None:
    call = CallState("lobby", state="active", session_id="s2")
    others = [user(f"k{i}", f"Kit {i}") for i in range(5)]
    replay(call, event("onUserListChanged", users=[user("lobby", "Lobby"), *others]))
    assert describe_call_state(call) == (
        "In call with 5 participants (Kit 0, Kit 1, Kit 2 and 2 more)"
    )


def test_a_list_change_that_keeps_the_count_logs_nothing() -> None:
    call = CallState("lobby", state="active", session_id="s2")
    replay(call, event("onUserListChanged", users=[user("lobby", "Lobby"), user("a", "A")]))
    assert replay(call, event("onUserListChanged", users=[user("a", "A renamed")])) == []
    assert call.others == ["A renamed"]
