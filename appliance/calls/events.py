"""Call events: the seed's CallsEventsDelegate, the ringing listener, and the hub that
delivers every event to them and to any number of subscribers (REST, screen, tests). The
seed's types the events carry are in ``appliance.events``."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.events import (
    Call,
    CallStatus,
    CallSwitchRequestInfo,
    CallType,
    CallUser,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
    to_jsonable,
)
from appliance.tasks import TaskSet
from hal.audio.base import Route as AudioMode

__all__ = [
    "AudioMode",
    "Call",
    "CallEvent",
    "CallListener",
    "CallStatus",
    "CallSwitchRequestInfo",
    "CallType",
    "CallUser",
    "CallsEventsDelegate",
    "EventHub",
    "RTCMutedUser",
    "RTCRecordingInfo",
    "RTCUser",
    "RTCVideoPausedUser",
    "to_jsonable",
]

log = logging.getLogger(__name__)


class CallsEventsDelegate(Protocol):
    """The seed's CallsEventsDelegate. Implement any subset; methods may be async."""

    def on_call_ended(self) -> None: ...
    def on_session_timeout(self) -> None: ...
    def on_call_end_button_pressed(self) -> None: ...
    def on_user_joined(self, user: RTCUser) -> None: ...
    def on_user_left(self, user: RTCUser) -> None: ...
    def on_user_list_changed(self, users: list[RTCUser]) -> None: ...
    def on_audio_mode_changed(self, modes: list[AudioMode]) -> None: ...
    def on_call_switched_to_video(self, info: CallSwitchRequestInfo) -> None: ...
    def on_user_muted(self, user: RTCMutedUser) -> None: ...
    def on_recording_toggled(self, info: RTCRecordingInfo) -> None: ...


class CallListener(Protocol):
    """The ringing flow's listener (the Chat SDK's CallListener). Any subset; may be async."""

    def on_incoming_call_received(self, call: Call) -> None: ...
    def on_incoming_call_cancelled(self, call: Call) -> None: ...
    def on_outgoing_call_accepted(self, call: Call) -> None: ...
    def on_outgoing_call_rejected(self, call: Call) -> None: ...
    def on_call_ended_message_received(self, call: Call) -> None: ...
    def on_call_busy(self, call: Call) -> None: ...
    def on_call_unanswered(self, call: Call) -> None: ...


# Event name (as the seed and the events WebSocket spell it) -> delegate/listener method.
DELEGATE_EVENTS = {
    "onCallEnded": "on_call_ended",
    "onSessionTimeout": "on_session_timeout",
    "onCallEndButtonPressed": "on_call_end_button_pressed",
    "onUserJoined": "on_user_joined",
    "onUserLeft": "on_user_left",
    "onUserListChanged": "on_user_list_changed",
    "onAudioModeChanged": "on_audio_mode_changed",
    "onCallSwitchedToVideo": "on_call_switched_to_video",
    "onUserMuted": "on_user_muted",
    "onRecordingToggled": "on_recording_toggled",
}
LISTENER_EVENTS = {
    "onIncomingCallReceived": "on_incoming_call_received",
    "onIncomingCallCancelled": "on_incoming_call_cancelled",
    "onOutgoingCallAccepted": "on_outgoing_call_accepted",
    "onOutgoingCallRejected": "on_outgoing_call_rejected",
    "onCallEndedMessageReceived": "on_call_ended_message_received",
    "onCallBusy": "on_call_busy",
    "onCallUnanswered": "on_call_unanswered",
}
# Events of callbox's own, beyond the seed's.
EXTRA_EVENTS = frozenset(
    {
        "onSessionStateChanged",  # {"state": "active", "session_id": ...}
        "onLocalStateChanged",  # the kit's own state, as GET /api/v1/session's "local"
        "onUserVideoPaused",  # {"user": RTCUser, "is_paused": bool}
        "onSessionTimeoutWarning",  # {"seconds_left": 60}
        "onOutgoingCallInitiated",  # the Call
        "onWarning",  # {"code": ..., "message": ..., "device": ...}
    }
)
ALL_EVENTS = frozenset(DELEGATE_EVENTS) | frozenset(LISTENER_EVENTS) | EXTRA_EVENTS


@dataclass(frozen=True)
class CallEvent:
    event: str
    data: dict[str, Any]
    ts: float

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "data": self.data, "ts": self.ts}


def _event_data(event: str, payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if event == "onUserListChanged":
        return {"users": to_jsonable(payload)}
    if event == "onAudioModeChanged":
        return {"modes": to_jsonable(payload)}
    data = to_jsonable(payload)
    return data if isinstance(data, dict) else {"value": data}


class EventHub:
    """Delivers each event to the session's delegate, the ringing listeners and every
    subscriber queue. A delegate that raises is logged, never breaks the call."""

    def __init__(self, queue_size: int = 256) -> None:
        self.delegate: object | None = None
        self._listeners: dict[str, object] = {}
        self._queues: set[asyncio.Queue[CallEvent]] = set()
        self._queue_size = queue_size
        self._tasks = TaskSet(log)  # async handlers: a failure is logged

    def add_listener(self, listener_id: str, listener: object) -> None:
        self._listeners[listener_id] = listener

    def remove_listener(self, listener_id: str) -> None:
        self._listeners.pop(listener_id, None)

    def emit(self, event: str, payload: Any = None) -> CallEvent:
        if event not in ALL_EVENTS:
            raise ValueError(f"unknown event {event}")
        record = CallEvent(event, _event_data(event, payload), time.time())
        if event in DELEGATE_EVENTS:
            self._call(self.delegate, DELEGATE_EVENTS[event], payload)
        elif event in LISTENER_EVENTS:
            for listener in list(self._listeners.values()):
                self._call(listener, LISTENER_EVENTS[event], payload)
        for queue in list(self._queues):
            if queue.full():  # a slow subscriber loses its oldest events, not the call
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(record)
        return record

    def _call(self, target: object | None, method: str, payload: Any) -> None:
        handler = getattr(target, method, None) if target is not None else None
        if handler is None:
            return
        try:
            result = handler() if payload is None else handler(payload)
            if inspect.isawaitable(result):
                self._tasks.add(asyncio.ensure_future(result))
        except Exception:
            log.exception("event handler %s failed", method)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[CallEvent]]:
        """``with hub.subscribe() as queue: event = await queue.get()``"""
        queue: asyncio.Queue[CallEvent] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def stream(self) -> AsyncIterator[CallEvent]:
        with self.subscribe() as queue:
            while True:
                yield await queue.get()
