"""Membership on its own: who is in the call, the events their comings and goings make, and
the list rebuilt after a reconnect, with plain callables for the media and no aiortc."""

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from appliance.calls import membership as membership_module
from appliance.calls.membership import Membership
from appliance.events import (
    Event,
    RecordingToggled,
    UserJoined,
    UserLeft,
    UserMuted,
    UserVideoPaused,
)
from appliance.signaling.messages import Participant


def person(uid: str, **state: bool) -> Participant:
    return Participant(uid=uid, name=uid.title(), joined_at=0.0, **state)


@dataclass
class Call:
    """A membership and what it did to the media and the delegate."""

    active: bool = True
    events: list[Event] = field(default_factory=list)
    connected: list[tuple[str, bool]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    left_unseen: int = 0
    members: Membership = field(init=False)

    def __post_init__(self) -> None:
        async def release(uid: str) -> None:
            self.released.append(uid)

        async def left_unseen() -> None:
            self.left_unseen += 1

        self.members = Membership(
            self.events.append,
            connect=lambda p, offerer: self.connected.append((p.uid, offerer)),
            release=release,
            active=lambda: self.active,
            left_unseen=left_unseen,
        )

    def kinds(self) -> list[tuple[str, str]]:
        return [(type(e).__name__, _uid(e)) for e in self.events]


def _uid(event: Event) -> str:
    match event:
        case UserJoined(user) | UserLeft(user):
            return user.uid
        case UserMuted(change):
            return change.muted.uid
        case UserVideoPaused(change):
            return change.user.uid
        case RecordingToggled(info):
            return info.user.uid
    return ""


def test_media_stack_not_loaded() -> None:
    code = (
        "import sys, appliance.calls.membership; "
        "sys.exit(any(m.split('.')[0] == 'aiortc' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_join_and_leave_tell_the_delegate_and_the_media() -> None:
    call = Call()
    call.members.add(person("bob"), offerer=True)
    call.members.add(person("carol", recording=True), offerer=False)
    assert list(call.members.others) == ["bob", "carol"]
    assert call.members.peak == 3
    assert call.connected == [("bob", True), ("carol", False)]
    await call.members.remove("bob")
    assert call.released == ["bob"]
    assert call.kinds() == [
        ("UserJoined", "bob"),
        ("UserJoined", "carol"),
        ("RecordingToggled", "carol"),  # recording before we heard of her
        ("UserLeft", "bob"),
    ]
    assert not call.members.one_to_one_over  # there were three


async def test_a_one_to_one_call_is_over_when_the_other_goes() -> None:
    call = Call()
    call.members.add(person("bob"), offerer=True)
    await call.members.remove("bob")
    assert call.members.one_to_one_over


def test_joined_again_is_only_news_for_what_changed() -> None:
    call = Call()
    assert call.members.joined(person("bob"))
    assert not call.members.joined(person("bob", muted=True))
    assert call.connected == [("bob", False)]
    assert call.kinds() == [("UserJoined", "bob"), ("UserMuted", "bob")]


def test_an_update_for_someone_unknown_is_ignored() -> None:
    call = Call()
    call.members.update(person("bob", muted=True), ["muted"])
    call.members.add(person("carol"), offerer=True)
    call.members.update(person("carol", video_paused=True), ["video_paused"])
    assert call.kinds() == [("UserJoined", "carol"), ("UserVideoPaused", "carol")]


async def test_rebuilt_after_a_reconnect() -> None:
    call = Call()
    for uid in ("bob", "carol", "dave"):
        call.members.add(person(uid), offerer=True)
    call.events.clear()
    # Bob is listed and paused meanwhile; Carol is not listed but her media flows; Dave is
    # neither (gone); Erin is new.
    changed = await call.members.rebuild(
        person("me"),
        [person("bob", video_paused=True), person("erin")],
        media_flowing=lambda uid: uid == "carol",
    )
    assert changed
    assert call.members.me == person("me")
    assert list(call.members.others) == ["bob", "carol", "erin"]
    assert call.members.awaiting_rejoin == {"carol"}
    assert call.released == ["dave"]
    assert call.kinds() == [
        ("UserLeft", "dave"),
        ("UserVideoPaused", "bob"),
        ("UserJoined", "erin"),
    ]


async def test_nothing_changed_after_a_reconnect() -> None:
    call = Call()
    call.members.add(person("bob"), offerer=True)
    call.events.clear()
    changed = await call.members.rebuild(person("me"), [person("bob")], media_flowing=bool)
    assert not changed and call.events == []


async def test_those_not_back_are_dropped_after_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(membership_module, "REJOIN_WAIT", 0.01)
    call = Call()
    call.members.add(person("bob"), offerer=True)
    await call.members.rebuild(person("me"), [], media_flowing=lambda uid: True)
    assert call.members.awaiting_rejoin == {"bob"}
    call.members.wait_for_rejoiners()
    for _ in range(100):
        if call.left_unseen:
            break
        await asyncio.sleep(0.01)
    assert call.left_unseen == 1
    assert call.released == ["bob"] and not call.members.others
    assert not call.members.awaiting_rejoin


async def test_silent_and_not_back_is_gone() -> None:
    call = Call()
    call.members.add(person("bob"), offerer=True)
    assert not call.members.media_interrupted("bob")  # on the server: still here
    assert call.members.media_restored("bob")
    assert not call.members.media_restored("bob")  # told once
    await call.members.rebuild(person("me"), [], media_flowing=lambda uid: True)
    assert call.members.media_interrupted("bob")


async def test_no_drops_once_the_call_ended() -> None:
    call = Call(active=False)
    call.members.add(person("bob"), offerer=True)
    call.members.awaiting_rejoin.add("bob")
    await call.members.drop(["bob"])
    assert call.released == [] and call.left_unseen == 0
    assert not call.members.awaiting_rejoin


def test_switched_to_video_for_everyone() -> None:
    call = Call()
    call.members.me = person("me", audio_only=True)
    call.members.add(person("bob", audio_only=True), offerer=True)
    call.members.clear_audio_only()
    assert call.members.me.audio_only is False
    assert call.members.others["bob"].audio_only is False
