"""The session server restarts mid-call (``callbox server`` stopped and started again on
the same port and database): media between the kits keeps flowing while it is away (the far
camera's frame counter advances, the far tone is heard), the kits reconnect with backoff and
resume their places, a change made meanwhile reaches the far kit, nobody is told that anyone
left or joined; and a call token that expired while the server was away is refused, the kit
getting a fresh one with its auth token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.signaling.client import ServerApi, SignalingClient, SignalingError
from appliance.signaling.messages import Join, ParticipantState
from tests.kits import Kit, KitFactory, free_port
from tests.reliability.network.processes import ServerProcess

MEMBERSHIP = ("onUserLeft", "onUserJoined", "onCallEnded", "onSessionTimeout")
TOKEN_TTL = 10  # the shortest the config allows


@pytest.fixture
async def restartable(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", f"127.0.0.1:{free_port()}", token_ttl=TOKEN_TTL)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def factory(restartable: ServerProcess, tmp_path: Path) -> AsyncIterator[KitFactory]:
    kits = KitFactory(restartable, tmp_path)  # type: ignore[arg-type]  # what it uses of a server
    try:
        yield kits
    finally:
        await kits.close()


async def in_call(factory: KitFactory, session_id: str) -> tuple[Kit, Kit]:
    a = await factory("room-a")
    b = await factory("room-b")
    await a.join(session_id)
    await b.join(session_id)
    await a.wait_for_video_from("room-b", timeout=20)
    await b.wait_for_video_from("room-a", timeout=20)
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)
    return a, b


async def until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


def seen(kit: Kit, uid: str) -> dict[str, object]:
    (participant,) = [p for p in kit.calls.snapshot()["participants"] if p["uid"] == uid]
    return participant  # type: ignore[no-any-return]


async def media_flows(a: Kit, b: Kit) -> None:
    await a.wait_for_video_from("room-b", frames=15, timeout=20)
    await b.wait_for_video_from("room-a", frames=15, timeout=20)
    await a.wait_to_hear(b.tone_hz)


async def test_media_flows_while_the_server_restarts_and_the_kits_resume(
    restartable: ServerProcess, factory: KitFactory
) -> None:
    a, b = await in_call(factory, "restart")
    mark_a, mark_b = len(a.events), len(b.events)

    await restartable.stop()
    await until(lambda: not a.calls.connected and not b.calls.connected)
    await media_flows(a, b)  # peer to peer: the server was never in the way
    await a.calls.mute_audio(True)  # the server cannot be told now
    await b.wait_for_silence()
    await restartable.start()

    # Both reconnect (backing off while it was away) and resume; b learns of a's mute.
    muted = await b.wait_for(
        "onUserMuted", lambda d: d["muted"]["uid"] == "room-a", timeout=30, after=mark_b
    )
    assert muted.data["is_muted"] is True
    await until(lambda: a.calls.connected and b.calls.connected)
    assert seen(b, "room-a")["audio_muted"] is True
    await media_flows(a, b)
    # The server serves the session again: an unmute reaches b through it.
    mark = len(b.events)
    await a.calls.mute_audio(False)
    unmuted = await b.wait_for("onUserMuted", timeout=10, after=mark)
    assert unmuted.data["is_muted"] is False
    await b.wait_to_hear(a.tone_hz)
    for kit, start in ((a, mark_a), (b, mark_b)):
        assert [e.event for e in kit.events[start:] if e.event in MEMBERSHIP] == []
        assert kit.calls.state.value == "active"
        assert seen(kit, "room-b" if kit is a else "room-a")["media"]["restarts"] == 0  # type: ignore[index]


async def test_a_token_that_expired_while_the_server_was_away_is_refused_and_renewed(
    restartable: ServerProcess, factory: KitFactory
) -> None:
    a, b = await in_call(factory, "expiry")
    assert a.calls.session is not None
    held = a.calls.session.token
    api = ServerApi(restartable.url)
    try:
        spare = await api.create_token(a.auth_token, "expiry")  # issued with a's
    finally:
        await api.close()
    mark_a, mark_b = len(a.events), len(b.events)

    await restartable.stop()
    await asyncio.sleep(max(held.expires_at, spare.expires_at) - time.time() + 1)
    await media_flows(a, b)
    await restartable.start()

    # Each kit's rejoin is refused for its expired token; it gets a fresh one and resumes.
    for kit, mark in ((a, mark_a), (b, mark_b)):
        await kit.wait_for("onWarning", lambda d: d["code"] == "token-expired", 30, mark)
    await until(lambda: a.calls.connected and b.calls.connected)
    await media_flows(a, b)
    assert a.calls.session is not None and a.calls.session.token.token != held.token
    for kit, start in ((a, mark_a), (b, mark_b)):
        assert [e.event for e in kit.events[start:] if e.event in MEMBERSHIP] == []
    # The server itself never takes an expired token, whoever brings it.
    client = SignalingClient(restartable.url, a.auth_token)
    try:
        await client.connect()
        join = Join(
            type="join", session_id="expiry", call_token=spare.token, state=ParticipantState()
        )
        with pytest.raises(SignalingError) as refused:
            await client.request(join)
        assert refused.value.code == "token-expired"
    finally:
        await client.close()
    assert a.calls.state.value == "active"


async def test_a_kit_that_hung_up_while_the_server_was_away_ends_the_call_for_the_other(
    restartable: ServerProcess, factory: KitFactory
) -> None:
    a, b = await in_call(factory, "gone")
    mark_a = len(a.events)
    await restartable.stop()
    await until(lambda: not b.calls.connected)
    await b.calls.end_session()  # the server cannot hear of it
    await a.wait_for_silence()
    await restartable.start()

    # a rejoins a server that forgot everyone; b is not back and its media has stopped:
    # b left, and a 1:1 call is over when either side goes.
    left = await a.wait_for("onUserLeft", timeout=30, after=mark_a)
    assert left.data["uid"] == "room-b"
    await a.wait_for("onCallEnded", timeout=10, after=mark_a)
    await until(lambda: a.calls.state.value == "idle" and a.calls.connected)
    assert b.calls.state.value == "idle"
