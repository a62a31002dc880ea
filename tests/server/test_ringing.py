"""The ringing flow over signaling: initiate, accept, reject, cancel, end, busy, unanswered,
a receiver who connects late, and the call log each of them leaves."""

from __future__ import annotations

import pytest

from appliance.server import SessionServer
from appliance.signaling.client import SignalingError
from appliance.signaling.messages import (
    CallAction,
    CallEventMessage,
    CallInfo,
    CallInitiate,
    CallReply,
    Leave,
    ParticipantJoined,
    SessionEnded,
)
from tests.server.conftest import Kit, KitFactory, ServerFactory, kits


async def call(caller: Kit, receiver: str, call_type: str = "video") -> CallInfo:
    reply = await caller.request(
        CallInitiate(type="call-initiate", receiver=receiver, call_type=call_type)
    )
    assert isinstance(reply, CallReply)
    return reply.call


async def act(kit: Kit, action: str, session_id: str) -> CallInfo:
    reply = await kit.request(CallAction(type=action, session_id=session_id))
    assert isinstance(reply, CallReply)
    return reply.call


async def refused(kit: Kit, action: str, session_id: str) -> str:
    with pytest.raises(SignalingError) as refusal:
        await act(kit, action, session_id)
    return refusal.value.code


async def event(kit: Kit, kind: str) -> CallInfo:
    message = await kit.next(CallEventMessage)
    assert message.type == kind
    call: CallInfo = message.call
    return call


async def log_of(kit: Kit) -> list[CallInfo]:
    return await kit.api.calls(kit.auth_token)


async def test_accept_then_end(make_kit: KitFactory) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    initiated = await call(alice, "bob", "audio")
    assert initiated.status == "initiated"
    assert (initiated.initiator.uid, initiated.initiator.name) == ("alice", "Alice")
    assert (initiated.receiver.uid, initiated.receiver.name) == ("bob", "Bob")
    assert initiated.call_type == "audio"
    assert initiated.joined_at is None and initiated.ended_at is None

    assert await event(bob, "call-incoming") == initiated
    await alice.quiet()

    accepted = await act(bob, "call-accept", initiated.session_id)
    assert accepted.status == "ongoing" and accepted.joined_at is not None
    assert await event(alice, "call-accepted") == accepted
    assert [c.status for c in await log_of(alice)] == ["ongoing"]

    # Both join the call's session; ending the call ends the session for the other side.
    await alice.join(initiated.session_id, audio_only=True)
    await bob.join(initiated.session_id)
    await alice.next(ParticipantJoined)
    ended = await act(alice, "call-end", initiated.session_id)
    assert ended.status == "ended" and ended.ended_at is not None
    assert await event(bob, "call-ended") == ended
    session_ended = await bob.next(SessionEnded)
    assert (session_ended.session_id, session_ended.reason) == (initiated.session_id, "call-ended")
    await alice.quiet()

    for kit in (alice, bob):
        (logged,) = await log_of(kit)
        assert logged == ended
    assert await refused(bob, "call-end", initiated.session_id) == "call-not-pending"


async def test_reject(make_kit: KitFactory) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    ringing = await call(alice, "bob")
    await event(bob, "call-incoming")
    assert await refused(alice, "call-reject", ringing.session_id) == "not-your-call"
    assert await refused(alice, "call-accept", ringing.session_id) == "not-your-call"
    assert await refused(bob, "call-end", ringing.session_id) == "call-not-pending"

    rejected = await act(bob, "call-reject", ringing.session_id)
    assert rejected.status == "rejected" and rejected.ended_at is not None
    assert await event(alice, "call-rejected") == rejected
    assert await refused(bob, "call-accept", ringing.session_id) == "call-not-pending"
    assert [c.status for c in await log_of(bob)] == ["rejected"]


async def test_cancel(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    ringing = await call(alice, "bob")
    await event(bob, "call-incoming")
    assert await refused(bob, "call-cancel", ringing.session_id) == "not-your-call"
    assert await refused(carol, "call-accept", ringing.session_id) == "not-your-call"
    assert await refused(carol, "call-end", ringing.session_id) == "not-your-call"

    cancelled = await act(alice, "call-cancel", ringing.session_id)
    assert cancelled.status == "cancelled"
    assert await event(bob, "call-cancelled") == cancelled
    assert await refused(bob, "call-accept", ringing.session_id) == "call-not-pending"
    assert await refused(carol, "call-accept", ringing.session_id) == "not-your-call"
    assert await refused(bob, "call-accept", "no-such-call") == "unknown-call"
    await carol.quiet()


async def test_busy_while_ringing_in_a_call_or_in_a_session(make_kit: KitFactory) -> None:
    alice, bob, carol, dave = await kits(make_kit, "alice", "bob", "carol", "dave")
    first = await call(alice, "bob")
    await event(bob, "call-incoming")

    busy = await call(carol, "bob")  # bob is party to a ringing call
    assert busy.status == "busy" and busy.ended_at is not None
    assert await event(carol, "call-busy") == busy
    assert await call(carol, "alice") == (await event(carol, "call-busy"))  # so is alice
    await bob.quiet()

    await act(bob, "call-accept", first.session_id)
    await event(alice, "call-accepted")
    assert (await call(dave, "bob")).status == "busy"  # ongoing
    await event(dave, "call-busy")

    await carol.join("meeting")
    assert (await call(dave, "carol")).status == "busy"  # in a session
    await event(dave, "call-busy")
    await carol.quiet()

    # Carol's log: her two busy calls, and dave's busy call to her, newest first.
    statuses = [(c.initiator.uid, c.receiver.uid, c.status) for c in await log_of(carol)]
    assert statuses == [
        ("dave", "carol", "busy"),
        ("carol", "alice", "busy"),
        ("carol", "bob", "busy"),
    ]


async def test_refusals_of_call_initiate(make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    with pytest.raises(SignalingError) as refusal:
        await call(alice, "nobody")
    assert refusal.value.code == "unknown-user"
    with pytest.raises(SignalingError) as refusal:
        await call(alice, "alice")
    assert refusal.value.code == "bad-message"
    assert refusal.value.message.startswith("receiver")
    assert await log_of(alice) == []


async def test_unanswered(make_server: ServerFactory, make_kit: KitFactory) -> None:
    server = await make_server(ring_timeout=0.2)
    alice, bob = await make_kit("alice", on=server), await make_kit("bob", on=server)
    ringing = await call(alice, "bob")
    await event(bob, "call-incoming")

    unanswered = await event(alice, "call-unanswered")
    assert unanswered.session_id == ringing.session_id
    assert unanswered.status == "unanswered" and unanswered.ended_at is not None
    assert await event(bob, "call-unanswered") == unanswered
    assert await refused(bob, "call-accept", ringing.session_id) == "call-not-pending"
    assert await log_of(bob) == [unanswered]
    # No longer busy.
    assert (await call(alice, "bob")).status == "initiated"


async def test_accepted_call_nobody_joins_is_ended(
    make_server: ServerFactory, make_kit: KitFactory
) -> None:
    server = await make_server(join_timeout=0.2)
    alice, bob = await make_kit("alice", on=server), await make_kit("bob", on=server)
    ringing = await call(alice, "bob")
    await event(bob, "call-incoming")
    await act(bob, "call-accept", ringing.session_id)
    await event(alice, "call-accepted")
    for kit in (alice, bob):
        ended = await event(kit, "call-ended")
        assert (ended.session_id, ended.status) == (ringing.session_id, "ended")


async def test_late_receiver_hears_the_ringing_call(
    make_server: ServerFactory, make_kit: KitFactory
) -> None:
    """A receiver whose connection dropped a moment ago (within the reconnect grace) may
    be on its way back: the call rings, and it hears it when it reconnects."""
    server = await make_server(reconnect_grace=10)
    alice = await make_kit("alice", on=server)
    away = await make_kit("bob", on=server)
    await away.close()  # bob's network blinks
    ringing = await call(alice, "bob")
    bob = await make_kit("bob", on=server)
    assert await event(bob, "call-incoming") == ringing
    await act(bob, "call-accept", ringing.session_id)
    assert (await event(alice, "call-accepted")).status == "ongoing"

    # Once it is no longer ringing, a new connection hears nothing of it.
    late = await make_kit("bob", on=server)
    await late.quiet()


async def test_ringing_an_offline_kit_fails_at_once(make_kit: KitFactory) -> None:
    """A kit that is not connected (and not reconnecting) is said to be offline at once,
    instead of ringing for the whole ring timeout; nothing is logged as a call."""
    alice = await make_kit("alice")
    bob = await make_kit("bob", connect=False)
    await bob.api.create_token(bob.auth_token, "warm-up")  # bob exists but is offline
    with pytest.raises(SignalingError) as refusal:
        await call(alice, "bob")
    assert refusal.value.code == "receiver-offline"
    assert refusal.value.message.startswith("Bob (bob) is offline: it is not connected")
    assert await log_of(alice) == []
    await bob.connect()
    assert (await call(alice, "bob")).status == "initiated"


async def test_session_over_ends_the_ongoing_call(
    server: SessionServer, make_kit: KitFactory
) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    ringing = await call(alice, "bob")
    await event(bob, "call-incoming")
    await act(bob, "call-accept", ringing.session_id)
    await event(alice, "call-accepted")
    await alice.join(ringing.session_id)
    await bob.join(ringing.session_id)
    await alice.next(ParticipantJoined)
    await bob.request(Leave(type="leave"))
    assert (await alice.next(SessionEnded)).reason == "peer-left"

    (logged,) = await log_of(alice)
    assert logged.status == "ended" and logged.ended_at is not None
    assert (await call(bob, "alice")).status == "initiated"  # nobody is busy any more


async def test_call_log_is_the_users_own_newest_first(make_kit: KitFactory) -> None:
    alice, bob, carol = await kits(make_kit, "alice", "bob", "carol")
    first = await call(alice, "bob")
    await act(alice, "call-cancel", first.session_id)
    second = await call(carol, "alice")
    await act(alice, "call-reject", second.session_id)
    third = await call(bob, "carol")
    await act(bob, "call-cancel", third.session_id)

    assert [c.session_id for c in await log_of(alice)] == [second.session_id, first.session_id]
    assert [c.session_id for c in await log_of(carol)] == [third.session_id, second.session_id]
    assert [c.session_id for c in await alice.api.calls(alice.auth_token, limit=1)] == [
        second.session_id
    ]


async def test_who_left_when_is_remembered_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry remembers who left recently (a kit may be reconnecting) without
    growing for ever as guests come and go."""
    from typing import Any, cast

    from appliance.server import connection as registry_module
    from appliance.server.connection import ConnectionRegistry
    from appliance.server.store import User

    clock = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
    registry = ConnectionRegistry()
    ws = cast(Any, object())
    for n in range(registry_module.LEFT_PRUNE_AT):
        registry.remove(registry.add(ws, User(f"guest-{n}", "Guest")))
    assert registry.reachable("guest-0", grace=20)
    clock[0] += registry_module.LEFT_KEPT + 1
    registry.remove(registry.add(ws, User("room-a", "Room A")))
    assert len(registry._left) == 1
    assert registry.reachable("room-a", grace=20) and not registry.reachable("guest-0", 1e9)
    registry.forget("room-a")
    assert not registry.reachable("room-a", grace=20)
