"""The session server's limits: a flood is refused and cut off while every other session's
messages are all delivered; connections, sessions and sign-ins are bounded per user and in
total. (Oversized frames: ``tests/server/test_protocol.py``, closed with 1009.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from appliance.config import ServerLimits
from appliance.server.limits import STRIKES, RateLimit, TokenBucket
from tests.clock import ManualClock
from tests.reliability.clients import (
    numbered_signal,
    pair_in_session,
    sign_in,
    signal_numbers,
)
from tests.server.conftest import ServerFactory


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = ManualClock(100.0)
    bucket = TokenBucket(10, 5, clock)
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.25  # 2.5 tokens back
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(20)) == 5
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 5)


def test_a_flood_runs_out_of_strikes_but_a_burst_does_not() -> None:
    clock = ManualClock(100.0)
    limits = ServerLimits(messages_per_second=10, message_burst=20)
    bursty = RateLimit(limits, clock)
    assert sum(bursty.admit() for _ in range(40)) == 20  # twice the burst at once
    for _ in range(60):  # then 12 a second for a minute: 2 a second over
        clock.now += 1
        assert sum(bursty.admit() for _ in range(12)) == 10
    assert bursty.refused == 20 + 2 * 60
    assert not bursty.abusive  # over the limit now and then, never cut off

    flood = RateLimit(limits, clock)
    admitted = sum(flood.admit() for _ in range(20 + STRIKES + 1))
    assert admitted == 20
    assert flood.refused == STRIKES + 1
    assert flood.abusive


async def test_a_flood_is_refused_and_cut_off_and_other_sessions_lose_nothing(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    limits = {"messages_per_second": 50, "message_burst": 100}
    server = await make_server(limits=limits)
    alice, bob = await pair_in_session(server, http, "steady", ("alice", "bob"))
    mallory, trudy = await pair_in_session(server, http, "flood", ("mallory", "trudy"))
    steady_done = asyncio.Event()
    flooders = []  # every connection of mallory's that was cut off
    flood_sent = 0

    async def flood() -> None:
        """Floods as fast as it can; cut off, signs in again and goes on."""
        nonlocal flood_sent
        flooder = mallory
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                while not flooder.closed.is_set():
                    await flooder.send(numbered_signal("trudy", flood_sent))
                    flood_sent += 1
                    if flood_sent % 20 == 0:
                        await asyncio.sleep(0)  # let its reader see the close
            await flooder.closed.wait()
            flooders.append(flooder)
            if steady_done.is_set():
                return
            flooder = await sign_in(http, server.url, "mallory", mallory.auth_token)
            await flooder.send(
                {
                    "type": "join",
                    "session_id": "flood",
                    "call_token": server.tokens.issue("mallory", "flood").token,
                    "id": 1,
                }
            )
            await flooder.reply(1)

    started = time.monotonic()
    flooding = asyncio.create_task(flood())
    for number in range(60):  # 25 a second: half the limit, while the flood goes on
        await alice.send(numbered_signal("bob", number))
        await asyncio.sleep(0.04)
    steady_done.set()
    await asyncio.wait_for(flooding, 30)
    elapsed = time.monotonic() - started

    # Every steady message arrived, in order, while the flood went on.
    async with asyncio.timeout(10):
        while len(signal_numbers(bob, "alice")) < 60:
            await asyncio.sleep(0.02)
    assert signal_numbers(bob, "alice") == list(range(60))
    assert not alice.received("error") and not bob.received("error")

    # Each flooding connection was told, then closed with 1008; what reached its partner
    # stayed within the budget and in order.
    assert len(flooders) >= 3
    for flooder in flooders:
        assert flooder.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        refusals = flooder.received("error")
        assert len(refusals) > STRIKES
        assert {e["code"] for e in refusals} == {"rate-limited"}
    relayed = signal_numbers(trudy, "mallory")
    budget = len(flooders) * limits["message_burst"] + limits["messages_per_second"] * elapsed
    assert len(relayed) <= budget
    assert relayed == sorted(relayed)
    assert flood_sent > len(relayed) + len(flooders) * STRIKES

    # The steady pair is still served after the flood.
    await alice.send({"type": "ping", "id": 5})
    assert (await alice.reply(5))["type"] == "pong"


async def test_a_request_over_the_limit_fails_at_once_with_its_id(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(limits={"messages_per_second": 1, "message_burst": 3})
    token = await server.create_user("eager", "Eager")
    client = await sign_in(http, server.url, "eager", token)
    for request in range(1, 6):
        await client.send({"type": "ping", "id": request})
    answers = [await client.reply(request) for request in range(1, 6)]
    assert [a["type"] for a in answers] == ["pong"] * 3 + ["error"] * 2
    assert answers[3]["code"] == "rate-limited"
    assert "at most 1 a second" in answers[3]["message"]
    await asyncio.sleep(1.1)  # the bucket refills: served again, still connected
    await client.send({"type": "ping", "id": 9})
    assert (await client.reply(9))["type"] == "pong"


async def test_a_user_over_its_connection_limit_loses_the_oldest(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(limits={"connections_per_user": 2})
    token = await server.create_user("roamer", "Roamer")
    first = await sign_in(http, server.url, "roamer", token)
    second = await sign_in(http, server.url, "roamer", token)
    third = await sign_in(http, server.url, "roamer", token)

    await asyncio.wait_for(first.closed.wait(), 10)
    assert first.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert [e["code"] for e in first.received("error")] == ["too-many-connections"]
    for alive, request in ((second, 2), (third, 3)):
        await alive.send({"type": "ping", "id": request})
        assert (await alive.reply(request))["type"] == "pong"
    assert len(server.connections.of("roamer")) == 2


async def test_sessions_per_user_are_bounded(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(limits={"sessions_per_user": 1})
    token = await server.create_user("busy", "Busy")

    async def join(socket: Any, session_id: str, request: int) -> dict[str, Any]:
        call_token = server.tokens.issue("busy", session_id).token
        await socket.send(
            {"type": "join", "session_id": session_id, "call_token": call_token, "id": request}
        )
        answer: dict[str, Any] = await socket.reply(request)
        return answer

    first = await sign_in(http, server.url, "busy", token)
    second = await sign_in(http, server.url, "busy", token)
    assert (await join(first, "one", 1))["type"] == "joined"
    refused = await join(second, "two", 2)
    assert (refused["type"], refused["code"]) == ("error", "too-many-sessions")
    assert not server.rooms.is_live("two")
    # The same session from another connection takes the place over: not a second session.
    assert (await join(second, "one", 3))["type"] == "joined"


async def test_sign_ins_and_connections_are_bounded_on_the_whole_server(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(limits={"unauthenticated": 2, "connections": 3})
    silent = [await http.ws_connect(f"{server.url}/v1/ws") for _ in range(2)]
    turned_away = await http.ws_connect(f"{server.url}/v1/ws")
    answer = await turned_away.receive_json(timeout=5)
    assert (answer["type"], answer["code"]) == ("error", "server-busy")
    assert (await turned_away.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    assert turned_away.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
    for ws in silent:
        await ws.close()

    tokens = [await server.create_user(f"user{n}", f"User {n}") for n in range(4)]
    clients = [await sign_in(http, server.url, f"user{n}", tokens[n]) for n in range(3)]
    fourth = await http.ws_connect(f"{server.url}/v1/ws")
    await fourth.send_json({"type": "hello", "auth_token": tokens[3], "id": 1})
    answer = await fourth.receive_json(timeout=5)
    assert (answer["type"], answer["code"], answer["id"]) == ("error", "server-busy", 1)
    await clients[0].close()
    async with asyncio.timeout(5):
        while len(server.connections) > 2:
            await asyncio.sleep(0.01)
    again = await sign_in(http, server.url, "user3", tokens[3])  # room again
    await again.send({"type": "ping", "id": 2})
    assert (await again.reply(2))["type"] == "pong"


async def test_a_client_that_does_not_read_is_cut_off(
    make_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_server(limits={"messages_per_second": 1000, "message_burst": 1000})
    sender, listener = await pair_in_session(server, http, "big", ("talker", "listener"))
    await listener.close()  # its reader stops...
    token = await server.create_user("deaf", "Deaf")
    deaf = await sign_in(http, server.url, "deaf", token, read=False)  # ...and this one never reads
    await deaf.send(
        {
            "type": "join",
            "session_id": "big",
            "call_token": server.tokens.issue("deaf", "big").token,
        }
    )
    async with asyncio.timeout(10):
        while not server.rooms.participants("big") or len(server.rooms.participants("big")) < 2:
            await asyncio.sleep(0.01)
    queued_for = server.connections.of("deaf")[0]
    offer = {"type": "offer", "sdp": "v" * 60_000}
    for _ in range(400):  # 24 MB: more than the socket buffers and the outbox hold
        await sender.send({"type": "signal", "to": "deaf", "description": offer})
        if not server.connections.of("deaf"):
            break
    assert not queued_for._outbox  # nothing more is kept for it
    deaf.start_reading()  # what it finds: what fitted in the socket, then the close
    await asyncio.wait_for(deaf.closed.wait(), 20)
    assert deaf.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert 0 < len(deaf.received("signal")) < 400
    assert not server.connections.of("deaf")
    await sender.send({"type": "ping", "id": 7})
    assert (await sender.reply(7))["type"] == "pong"
