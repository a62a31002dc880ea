"""STATUS= texts and journal call lines from call events, as the event hub emits them."""

from appliance.events import (
    Call,
    CallEvent,
    CallUnanswered,
    CallUser,
    Event,
    IncomingCallReceived,
    OutgoingCallInitiated,
    RTCUser,
    SessionStateChanged,
    UserJoined,
    UserLeft,
    UserListChanged,
)
from appliance.systemd.status import CallState, apply_event, describe_call_state


def user(uid: str, name: str) -> RTCUser:
    return RTCUser(uid, name)


def ringing_call(initiator: str, receiver: str) -> Call:
    return Call(
        session_id="s1",
        initiator=CallUser(initiator.lower(), initiator),
        receiver=CallUser(receiver.lower(), receiver),
        call_type="video",
        status="initiated",
        initiated_at=0.0,
    )


def state(name: str, session_id: str | None) -> SessionStateChanged:
    return SessionStateChanged(state=name, session_id=session_id)


def replay(call: CallState, *events: Event) -> list[str]:
    lines = [apply_event(call, CallEvent(e, 0.0)) for e in events]
    return [line for line in lines if line is not None]


def test_an_incoming_call_from_ringing_to_the_end() -> None:
    call = CallState("lobby")
    assert describe_call_state(call) == "Idle"
    lines = replay(
        call,
        IncomingCallReceived(ringing_call("Porch", "Lobby")),
        state("ringing", "s1"),
    )
    assert lines == ["Ringing: call from Porch"]
    assert call.session_id == "s1"
    lines = replay(
        call,
        state("connecting", "s1"),
        state("active", "s1"),
        UserJoined(user("porch", "Porch")),
        UserListChanged((user("lobby", "Lobby"), user("porch", "Porch"))),
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
        UserLeft(user("porch", "Porch")),
        UserListChanged((user("lobby", "Lobby"),)),
        state("ending", "s1"),
        state("idle", None),
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
        OutgoingCallInitiated(ringing_call("Lobby", "Porch")),
        state("ringing", "s1"),
        CallUnanswered(ringing_call("Lobby", "Porch")),
        state("idle", None),
    )
    assert lines == ["Ringing: calling Porch", "ringing ended"]


def test_a_big_call_names_the_first_few() -> None:
    call = CallState("lobby", state="active", session_id="s2")
    others = [user(f"k{i}", f"Kit {i}") for i in range(5)]
    replay(call, UserListChanged((user("lobby", "Lobby"), *others)))
    assert describe_call_state(call) == (
        "In call with 5 participants (Kit 0, Kit 1, Kit 2 and 2 more)"
    )


def test_a_list_change_that_keeps_the_count_logs_nothing() -> None:
    call = CallState("lobby", state="active", session_id="s2")
    replay(call, UserListChanged((user("lobby", "Lobby"), user("a", "A"))))
    assert replay(call, UserListChanged((user("a", "A renamed"),))) == []
    assert call.others == ["A renamed"]
