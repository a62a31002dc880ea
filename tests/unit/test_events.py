import asyncio
import logging
import typing
from dataclasses import dataclass
from typing import ClassVar

import pytest

from appliance.calls.events import (
    CallListener,
    CallsEventsDelegate,
    EventHub,
    RTCMutedUser,
    RTCUser,
)
from appliance.events import (
    AudioModeChanged,
    CallEnded,
    DelegateEvent,
    ListenerEvent,
    SessionTimeoutWarning,
    UserJoined,
    UserListChanged,
    UserMuted,
)
from hal.audio.base import Route


class Delegate:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_user_joined(self, user: RTCUser) -> None:
        self.calls.append(("joined", user))

    async def on_user_muted(self, muted: RTCMutedUser) -> None:
        await asyncio.sleep(0)
        self.calls.append(("muted", muted))

    def on_call_ended(self) -> None:
        raise RuntimeError("a buggy delegate")


async def test_delegate_and_subscribers_get_every_event() -> None:
    hub = EventHub()
    delegate = Delegate()
    hub.delegate = delegate
    user = RTCUser("b", "Room B")
    with hub.subscribe() as queue:
        hub.emit(UserJoined(user))
        hub.emit(UserMuted(RTCMutedUser(user, user, True)))
        hub.emit(AudioModeChanged((Route.SPEAKER, Route.BLUETOOTH)))
        hub.emit(UserListChanged((user,)))
        await asyncio.sleep(0.01)
        records = [queue.get_nowait().to_json() for _ in range(4)]
    assert delegate.calls == [("joined", user), ("muted", RTCMutedUser(user, user, True))]
    assert records[0]["event"] == "onUserJoined"
    assert records[0]["data"]["uid"] == "b"
    assert records[0]["data"]["name"] == "Room B"
    assert records[1]["data"]["muted"]["uid"] == "b"
    assert records[1]["data"]["is_muted"] is True
    assert records[2]["data"] == {"modes": ["SPEAKER", "BLUETOOTH"]}
    assert records[3]["data"]["users"][0]["uid"] == "b"


async def test_the_delegate_gets_lists_as_the_seeds_methods_say() -> None:
    seen: list[object] = []

    class Lists:
        def on_user_list_changed(self, users: list[RTCUser]) -> None:
            seen.append(users)

        def on_audio_mode_changed(self, modes: list[Route]) -> None:
            seen.append(modes)

    hub = EventHub()
    hub.delegate = Lists()
    user = RTCUser("b", "Room B")
    hub.emit(UserListChanged((user,)))
    hub.emit(AudioModeChanged((Route.SPEAKER,)))
    assert seen == [[user], [Route.SPEAKER]]


async def test_a_failing_delegate_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    hub.delegate = Delegate()
    with caplog.at_level(logging.ERROR):
        hub.emit(CallEnded())
    assert "on_call_ended" in caplog.text


async def test_slow_subscriber_keeps_newest_events() -> None:
    hub = EventHub(queue_size=3)
    with hub.subscribe() as queue:
        for n in range(10):
            hub.emit(SessionTimeoutWarning(seconds_left=n))
        seen = [queue.get_nowait().event for _ in range(queue.qsize())]
    assert seen == [SessionTimeoutWarning(7), SessionTimeoutWarning(8), SessionTimeoutWarning(9)]


@dataclass(frozen=True)
class UserJoind:
    """A misspelt look-alike of an event, declared outside appliance.events."""

    name: ClassVar[str] = "onUserJoind"
    method: ClassVar[str] = "on_user_joined"
    user: RTCUser


def test_unknown_events_are_refused() -> None:
    hub = EventHub()
    delegate = Delegate()
    hub.delegate = delegate
    with hub.subscribe() as queue:
        with pytest.raises(TypeError, match="onNothing"):
            hub.emit("onNothing")  # type: ignore[arg-type]  # a name is no event
        with pytest.raises(TypeError, match="UserJoind"):
            hub.emit(UserJoind(RTCUser("b", "Room B")))  # type: ignore[arg-type]
        assert queue.empty()
    assert delegate.calls == []


def test_every_seed_event_maps_to_a_snake_case_method() -> None:
    assert {event.method for event in typing.get_args(DelegateEvent)} == {
        "on_call_ended",
        "on_session_timeout",
        "on_call_end_button_pressed",
        "on_user_joined",
        "on_user_left",
        "on_user_list_changed",
        "on_audio_mode_changed",
        "on_call_switched_to_video",
        "on_user_muted",
        "on_recording_toggled",
    }


def test_every_handler_method_is_one_the_seeds_protocols_declare() -> None:
    def declared(protocol: type) -> set[str]:
        return {name for name in vars(protocol) if name.startswith("on_")}

    delegate_methods = {event.method for event in typing.get_args(DelegateEvent)}
    listener_methods = {event.method for event in typing.get_args(ListenerEvent)}
    assert delegate_methods == declared(CallsEventsDelegate)
    assert listener_methods == declared(CallListener)
