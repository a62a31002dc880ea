"""Joining and leaving sessions, relaying signals, state, switching to video, the 1:1 rule,
and reconnecting within the grace period."""

from __future__ import annotations

import pytest

from appliance.signaling.client import SignalingError
from appliance.signaling.messages import (
    Ack,
    Candidate,
    Description,
    Error,
    Join,
    Leave,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    ParticipantUpdated,
    SessionEnded,
    SignalIn,
    SignalOut,
    StatePatch,
    SwitchedToVideo,
    SwitchToVideo,
    UpdateState,
)
from tests.server.conftest import Kit, KitFactory, ServerFactory, kits

OFFER = Description(type="offer", sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
CANDIDATE = Candidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid="0")


async def in_session(session_id: str, *members: Kit) -> None:
    """Everyone joins, in order; the join notices are consumed."""
    for index, kit in enumerate(members):
        await kit.join(session_id)
        for earlier in members[:index]:
            assert (await earlier.next(ParticipantJoined)).participant.uid == kit.uid


async def test_two_join_and_see_each_other(make_kit: KitFactory) -> None:
    alice, bob = await kits(make_kit, "alice", "bob")

    first = await alice.join("room-1", muted=True)
    assert first.session_id == "room-1"
    assert first.participants == []
    assert (first.you.uid, first.you.name, first.you.muted) == ("alice", "Alice", True)
    assert first.audio_only is False

    second = await bob.join("room-1")
    assert [p.uid for p in second.participants] == ["alice"]
    assert second.participants[0].muted is True

    joined = await alice.next(ParticipantJoined)
    assert joined.session_id == "room-1"
    assert joined.participant == second.you
    await bob.quiet()


async def test_joining_twice_on_one_connection_is_refused(make_kit: KitFactory) -> None:
    (alice,) = await kits(make_kit, "alice")
    await alice.join("one")
    with pytest.raises(SignalingError) as refused:
        await alice.join("two")
    assert refused.value.code == "already-in-session"


async def test_three_participants_and_leaving(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    await alice.join("room")
    await bob.join("room")
    await alice.next(ParticipantJoined)
    third = await carol.join("room")
    assert [p.uid for p in third.participants] == ["alice", "bob"]  # oldest first
    for kit in (alice, bob):
        assert (await kit.next(ParticipantJoined)).participant.uid == "carol"

    assert isinstance(await carol.request(Leave(type="leave")), Ack)
    for kit in (alice, bob):
        left = await kit.next(ParticipantLeft)
        assert (left.session_id, left.participant.uid, left.reason) == ("room", "carol", "left")

    # Down to two after a peak of three: not a 1:1 call, so the session goes on.
    await bob.request(Leave(type="leave"))
    left = await alice.next(ParticipantLeft)
    assert (left.participant.uid, left.reason) == ("bob", "left")
    await alice.quiet()
    assert [p.uid for p in alice.server.rooms.participants("room")] == ["alice"]


async def test_one_to_one_ends_when_either_side_leaves(make_kit: KitFactory) -> None:
    alice, bob = await kits(make_kit, "alice", "bob")
    await in_session("call", alice, bob)

    await bob.request(Leave(type="leave"))
    ended = await alice.next(SessionEnded)
    assert (ended.session_id, ended.reason) == ("call", "peer-left")
    assert alice.server.rooms.participants("call") == []
    # Alice was removed too: leaving again is harmless, signalling is refused.
    assert isinstance(await alice.request(Leave(type="leave")), Ack)
    with pytest.raises(SignalingError) as refused:
        await alice.request(SignalOut(type="signal", to="bob", description=OFFER))
    assert refused.value.code == "not-in-session"


async def test_last_one_out_ends_the_session(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    await in_session("room", alice, bob, carol)
    for kit in (carol, bob, alice):
        await kit.request(Leave(type="leave"))
    assert alice.server.rooms.is_live("room") is False
    # A new token opens a new session under the same id; the old tokens cannot.
    assert (await alice.join("room")).participants == []


async def test_signal_relay(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    await in_session("relay", alice, bob, carol)

    assert isinstance(
        await alice.request(SignalOut(type="signal", to="bob", description=OFFER)), Ack
    )
    await alice.client.send(SignalOut(type="signal", to="carol", candidate=CANDIDATE))

    to_bob = await bob.next(SignalIn)
    assert (to_bob.session_id, to_bob.from_, to_bob.description, to_bob.candidate) == (
        "relay",
        "alice",
        OFFER,
        None,
    )
    to_carol = await carol.next(SignalIn)
    assert (to_carol.from_, to_carol.description, to_carol.candidate) == (
        "alice",
        None,
        CANDIDATE,
    )
    await alice.quiet()  # a successful send without an id is silent


async def test_signal_refusals(make_kit: KitFactory) -> None:
    alice, bob, dave = await kits(make_kit, "alice", "bob", "dave")
    with pytest.raises(SignalingError) as refused:
        await dave.request(SignalOut(type="signal", to="alice", description=OFFER))
    assert refused.value.code == "not-in-session"

    await in_session("s", alice, bob)
    for target in ("dave", "alice", "nobody"):
        with pytest.raises(SignalingError) as refused:
            await alice.request(SignalOut(type="signal", to=target, candidate=CANDIDATE))
        assert refused.value.code == "unknown-participant"
        assert target in refused.value.message

    with pytest.raises(SignalingError) as refused:
        await alice.request(SignalOut(type="signal", to="bob"))
    assert refused.value.code == "bad-message"
    assert "description" in refused.value.message and "candidate" in refused.value.message
    await bob.quiet()


async def test_state_updates_carry_only_what_changed(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    await in_session("s", alice, bob, carol)

    await alice.request(UpdateState(type="state", state=StatePatch(muted=True, recording=False)))
    for kit in (bob, carol):
        updated = await kit.next(ParticipantUpdated)
        assert updated.changed == ["muted"]
        assert (updated.participant.uid, updated.participant.muted) == ("alice", True)
        assert updated.participant.recording is False

    # Nothing really changes: nobody hears of it.
    await alice.request(UpdateState(type="state", state=StatePatch(muted=True)))
    await alice.client.send(UpdateState(type="state", state=StatePatch(video_paused=True)))
    for kit in (bob, carol):
        updated = await kit.next(ParticipantUpdated)
        assert updated.changed == ["video_paused"]
        assert (updated.participant.muted, updated.participant.video_paused) == (True, True)
    for kit in (alice, bob, carol):
        await kit.quiet()
    # A later joiner sees the state as it now is.
    dave = await make_kit("dave")
    seen = {p.uid: p for p in (await dave.join("s")).participants}
    assert (seen["alice"].muted, seen["alice"].video_paused) == (True, True)


async def test_call_type_is_each_participants_and_switch_reaches_all(
    make_kit: KitFactory,
) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    assert (await alice.join("s", audio_only=True)).audio_only is True
    second = await bob.join("s", audio_only=False)
    # Bob's own choice stands: an audio-only first joiner does not take his camera away.
    assert second.audio_only is False and second.you.audio_only is False
    assert [p.audio_only for p in second.participants] == [True]
    await alice.next(ParticipantJoined)
    await carol.join("s")
    for kit in (alice, bob):
        await kit.next(ParticipantJoined)

    assert isinstance(await bob.request(SwitchToVideo(type="switch-to-video")), Ack)
    for kit in (alice, bob, carol):
        switched = await kit.next(SwitchedToVideo)
        assert (switched.session_id, switched.by.uid, switched.by.audio_only) == (
            "s",
            "bob",
            False,
        )
    assert [p.audio_only for p in alice.server.rooms.participants("s")] == [False] * 3

    with pytest.raises(SignalingError) as refused:
        await carol.request(SwitchToVideo(type="switch-to-video"))
    assert refused.value.code == "not-audio-only"


async def test_a_second_connection_replaces_the_first(make_kit: KitFactory) -> None:
    alice, bob = await kits(make_kit, "alice", "bob")
    await in_session("s", alice, bob)
    again = await make_kit("alice")

    rejoined = await again.join("s")
    assert [p.uid for p in rejoined.participants] == ["bob"]
    replaced = await alice.next(Error)
    assert replaced.code == "replaced"
    await bob.quiet()  # the same participant, nothing to tell

    await bob.request(SignalOut(type="signal", to="alice", description=OFFER))
    assert (await again.next(SignalIn)).from_ == "bob"
    with pytest.raises(SignalingError) as refused:
        await alice.request(SignalOut(type="signal", to="bob", description=OFFER))
    assert refused.value.code == "not-in-session"
    await alice.quiet()


async def test_reconnect_within_grace_goes_unnoticed(make_kit: KitFactory) -> None:
    alice, bob = await kits(make_kit, "alice", "bob")
    await in_session("s", alice, bob)
    await alice.request(UpdateState(type="state", state=StatePatch(muted=True)))
    await bob.next(ParticipantUpdated)

    await alice.client.close()  # the connection drops; no leave
    back = await make_kit("alice")
    rejoined = await back.request(
        Join(
            type="join",
            session_id="s",
            call_token=await back.token("s"),
            state=ParticipantState(muted=True),
        )
    )
    assert [p.uid for p in rejoined.participants] == ["bob"]  # type: ignore[attr-defined]
    await bob.quiet(0.5)  # longer than the grace: alice never left

    await bob.request(SignalOut(type="signal", to="alice", candidate=CANDIDATE))
    assert (await back.next(SignalIn)).candidate == CANDIDATE


async def test_disconnected_after_grace(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    await in_session("s", alice, bob, carol)

    await carol.client.close()
    await bob.quiet(0.1)  # within the grace nothing is said
    for kit in (alice, bob):
        left = await kit.next(ParticipantLeft, timeout=2)
        assert (left.participant.uid, left.reason) == ("carol", "disconnected")

    # The peak was three, so the last two carry on after another drop.
    await bob.client.close()
    left = await alice.next(ParticipantLeft, timeout=2)
    assert (left.participant.uid, left.reason) == ("bob", "disconnected")


async def test_a_one_to_one_whose_peer_vanishes_ends(make_kit: KitFactory) -> None:
    alice, bob = await kits(make_kit, "alice", "bob")
    await in_session("s", alice, bob)
    await bob.client.close()
    ended = await alice.next(SessionEnded, timeout=2)
    assert (ended.session_id, ended.reason) == ("s", "peer-left")
    assert alice.server.rooms.is_live("s") is False


async def test_without_grace_a_drop_is_a_leave_at_once(
    make_server: ServerFactory, make_kit: KitFactory
) -> None:
    server = await make_server(reconnect_grace=0)
    alice = await make_kit("alice", on=server)
    bob = await make_kit("bob", on=server)
    carol = await make_kit("carol", on=server)
    await in_session("s", alice, bob, carol)
    await carol.client.close()
    left = await alice.next(ParticipantLeft, timeout=1)
    assert (left.participant.uid, left.reason) == ("carol", "disconnected")
