"""What the kit is doing, in words: the systemd ``STATUS=`` line and the journal's call
lines (each with its session id), followed from the call events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.calls import CallEvent, Calls
from appliance.events import (
    Call,
    CallUser,
    IncomingCallReceived,
    OutgoingCallInitiated,
    RTCUser,
    SessionStateChanged,
    UserJoined,
    UserLeft,
    UserListChanged,
)
from appliance.logs import session_log_context

log = logging.getLogger("appliance.calls.status")

NAMES_SHOWN = 3


@dataclass
class CallState:
    """The call as the events told it, so no intermediate state is lost even when the
    events are read a little after they happened."""

    uid: str
    state: str = "idle"
    session_id: str | None = None
    others: list[str] = field(default_factory=list)  # names of the other participants
    ringing_peer: str | None = None
    incoming: bool = False


def describe_call_state(call: CallState) -> str:
    if call.state == "ringing":
        if call.ringing_peer is None:
            return "Ringing"
        if call.incoming:
            return f"Ringing: call from {call.ringing_peer}"
        return f"Ringing: calling {call.ringing_peer}"
    if call.state == "connecting":
        return "Connecting to the call"
    if call.state == "active":
        count = len(call.others)
        if count == 0:
            return "In call, waiting for others to join"
        names = ", ".join(call.others[:NAMES_SHOWN])
        if count > NAMES_SHOWN:
            names += f" and {count - NAMES_SHOWN} more"
        return f"In call with {count} participant{'s' if count != 1 else ''} ({names})"
    if call.state == "ending":
        return "Ending the call"
    return "Idle"


def _name(user: RTCUser | CallUser) -> str:
    return user.name or user.uid or "?"


def apply_event(call: CallState, record: CallEvent) -> str | None:
    """Update ``call`` from one event; returns the journal line it deserves, if any."""
    match record.event:
        case IncomingCallReceived(call=ringing):
            _ringing(call, ringing, incoming=True)
            return None
        case OutgoingCallInitiated(call=ringing):
            _ringing(call, ringing, incoming=False)
            return None
        case SessionStateChanged(state=state, session_id=session_id):
            previous, call.state = call.state, state
            if session_id:
                call.session_id = session_id
            if call.state != "active":
                call.others = []
            if call.state == "idle":
                call.ringing_peer = None
                if previous == "ringing":
                    return "ringing ended"
                return "call ended" if previous in ("connecting", "active", "ending") else None
            return describe_call_state(call)
        case UserListChanged(users=users):
            before = len(call.others)
            call.others = [_name(u) for u in users if u.uid != call.uid]
            return describe_call_state(call) if len(call.others) != before else None
        case UserJoined(user=user):
            return f"{_name(user)} joined"
        case UserLeft(user=user):
            return f"{_name(user)} left"
    return None


def _ringing(call: CallState, ringing: Call, *, incoming: bool) -> None:
    call.incoming = incoming
    call.ringing_peer = _name(ringing.initiator if incoming else ringing.receiver)
    if call.state == "idle":
        call.session_id = ringing.session_id or call.session_id


async def follow_calls(calls: Calls, publish: Callable[[str], None]) -> None:
    """Until cancelled: log call lines and ``publish`` each new status text."""
    call = CallState(calls.uid, state=calls.state.value)
    shown = describe_call_state(call)
    publish(shown)
    with calls.events.subscribe() as events:
        while True:
            event = await events.get()
            session_before = call.session_id
            line = apply_event(call, event)
            if line is not None:
                # A call's last line ("call ended") belongs to the session it ended.
                with session_log_context(call.session_id or session_before):
                    log.info("%s", line)
            if call.state == "idle":
                call.session_id = None
            text = describe_call_state(call)
            if text != shown:
                shown = text
                publish(text)
