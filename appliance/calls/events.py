"""The hub that delivers every call event to the session's CallsEventsDelegate, the ringing
listeners and any number of subscribers (REST, screen, ringer, tests). The events
themselves, and the seed's types they carry, are in ``appliance.events``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from appliance.events import (
    Call,
    CallEvent,
    CallStatus,
    CallSwitchRequestInfo,
    CallType,
    CallUser,
    DelegateEvent,
    Event,
    ListenerEvent,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
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


class EventHub:
    """Delivers each event to the session's delegate, the ringing listeners and every
    subscriber queue. A delegate that raises is logged, never breaks the call."""

    def __init__(self, queue_size: int = 256) -> None:
        # Any object: the seed's delegate implements any subset of CallsEventsDelegate, which
        # a Protocol cannot say; the hub looks each event's method up on it.
        self.delegate: object | None = None
        self._listeners: dict[str, object] = {}
        self._queues: set[asyncio.Queue[CallEvent]] = set()
        self._queue_size = queue_size
        self._tasks = TaskSet(log)  # async handlers: a failure is logged

    def add_listener(self, listener_id: str, listener: object) -> None:
        self._listeners[listener_id] = listener

    def remove_listener(self, listener_id: str) -> None:
        self._listeners.pop(listener_id, None)

    def emit(self, event: Event) -> CallEvent:
        # Only the events appliance.events declares have a wire name and a handler: anything
        # else (a name string, a look-alike class) is refused here, not sent half-formed.
        if not isinstance(event, Event):
            raise TypeError(f"not a call event: {event!r}")
        record = CallEvent(event, time.time())
        if isinstance(event, DelegateEvent):
            self._call(self.delegate, event.method, _delegate_arguments(event))
        elif isinstance(event, ListenerEvent):
            for listener in list(self._listeners.values()):
                self._call(listener, event.method, (event.call,))
        for queue in list(self._queues):
            if queue.full():  # a slow subscriber loses its oldest events, not the call
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(record)
        return record

    def _call(self, target: object | None, method: str, arguments: tuple[object, ...]) -> None:
        handler = getattr(target, method, None) if target is not None else None
        if handler is None:
            return
        try:
            result = handler(*arguments)
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


def _delegate_arguments(event: DelegateEvent) -> tuple[object, ...]:
    # The delegate's methods take the event's fields in order; the seed's signatures take
    # lists where the frozen events hold tuples.
    values = (getattr(event, f.name) for f in dataclasses.fields(event))
    return tuple(list(value) if isinstance(value, tuple) else value for value in values)
