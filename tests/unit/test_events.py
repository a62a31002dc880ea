import asyncio
import logging

import pytest

from appliance.calls.events import (
    DELEGATE_EVENTS,
    EventHub,
    RTCMutedUser,
    RTCUser,
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
        hub.emit("onUserJoined", user)
        hub.emit("onUserMuted", RTCMutedUser(user, user, True))
        hub.emit("onAudioModeChanged", [Route.SPEAKER, Route.BLUETOOTH])
        hub.emit("onUserListChanged", [user])
        await asyncio.sleep(0.01)
        records = [queue.get_nowait() for _ in range(4)]
    assert delegate.calls == [("joined", user), ("muted", RTCMutedUser(user, user, True))]
    assert records[0].to_json()["event"] == "onUserJoined"
    assert records[0].data["uid"] == "b"
    assert records[0].data["name"] == "Room B"
    assert records[1].data["muted"]["uid"] == "b"
    assert records[1].data["is_muted"] is True
    assert records[2].data == {"modes": ["SPEAKER", "BLUETOOTH"]}
    assert records[3].data["users"][0]["uid"] == "b"


async def test_a_failing_delegate_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    hub.delegate = Delegate()
    with caplog.at_level(logging.ERROR):
        hub.emit("onCallEnded")
    assert "on_call_ended" in caplog.text


async def test_slow_subscriber_keeps_newest_events() -> None:
    hub = EventHub(queue_size=3)
    with hub.subscribe() as queue:
        for n in range(10):
            hub.emit("onSessionTimeoutWarning", {"seconds_left": n})
        seen = [queue.get_nowait().data["seconds_left"] for _ in range(queue.qsize())]
    assert seen == [7, 8, 9]


def test_unknown_events_are_refused() -> None:
    with pytest.raises(ValueError, match="onNothing"):
        EventHub().emit("onNothing")


def test_every_seed_event_maps_to_a_snake_case_method() -> None:
    assert set(DELEGATE_EVENTS.values()) == {
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
