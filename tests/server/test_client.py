"""SignalingClient against the real server and against a scripted one: replies and events
are kept apart, handlers run one at a time in order and may make requests themselves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from appliance.signaling.client import SignalingClient, SignalingError
from appliance.signaling.messages import (
    CallAction,
    CallEventMessage,
    CallInitiate,
    CallReply,
    Candidate,
    Error,
    Ping,
    Pong,
    ServerMessage,
    SignalOut,
)
from tests.server.conftest import KitFactory

Script = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """A stand-in server: says welcome, then hands each later frame to ``script``."""
    runners: list[web.AppRunner] = []

    async def serve(script: Script) -> str:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            hello = json.loads((await ws.receive()).data)
            await ws.send_json({"type": "welcome", "id": hello["id"], "uid": "u", "name": "U"})
            async for frame in ws:
                await script(ws, json.loads(frame.data))
            return ws

        app = web.Application()
        app.router.add_get("/v1/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_a_handler_may_await_a_request(make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    bob = await make_kit("bob", connect=False)
    answered: list[str] = []

    async def answer_incoming(message: ServerMessage) -> None:
        if isinstance(message, CallEventMessage) and message.type == "call-incoming":
            reply = await bob.client.request(
                CallAction(type="call-accept", session_id=message.call.session_id)
            )
            assert isinstance(reply, CallReply)
            answered.append(reply.call.status)

    bob.client.on_event(answer_incoming)
    await bob.connect()
    await alice.request(CallInitiate(type="call-initiate", receiver="bob"))
    accepted = await alice.next(CallEventMessage)
    assert (accepted.type, accepted.call.status) == ("call-accepted", "ongoing")
    assert answered == ["ongoing"]


async def test_errors_without_a_pending_request_reach_the_handlers(
    make_kit: KitFactory,
) -> None:
    alice = await make_kit("alice")
    await alice.client.send(SignalOut(type="signal", to="bob", candidate=None))
    error = await alice.next(Error)
    assert (error.id, error.code) == (None, "bad-message")
    await alice.client.send(SignalOut(type="signal", to="bob", candidate=Candidate(candidate="c")))
    assert (await alice.next(Error)).code == "not-in-session"


async def test_handlers_run_in_order_one_at_a_time(scripted: Any) -> None:
    async def burst(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        for n in range(5):
            await ws.send_json({"type": "error", "code": f"e{n}", "message": ""})
        await ws.send_json({"type": "error", "id": 999, "code": "stale", "message": ""})
        await ws.send_json({"type": "pong", "id": 998})  # a late reply: dropped
        await ws.send_json({"type": "pong", "id": frame["id"]})

    client = SignalingClient(await scripted(burst), "token")
    seen: list[str] = []
    running = 0

    async def slow(message: ServerMessage) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0.01)
        assert isinstance(message, Error)
        seen.append(message.code)
        running -= 1

    client.on_event(slow)
    await client.connect()
    assert isinstance(await client.request(Ping(type="ping")), Pong)
    for _ in range(100):
        if len(seen) == 6:
            break
        await asyncio.sleep(0.01)
    assert seen == ["e0", "e1", "e2", "e3", "e4", "stale"]
    await client.close()


async def test_a_close_before_the_reply_is_a_connection_error(scripted: Any) -> None:
    async def hang_up(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        await ws.close()

    client = SignalingClient(await scripted(hang_up), "token")
    closes: list[bool] = []
    client.on_close(lambda: closes.append(True))
    await client.connect()
    with pytest.raises(ConnectionError):
        await client.request(Ping(type="ping"))
    await asyncio.sleep(0.05)
    assert closes == [True]
    assert client.connected is False
    with pytest.raises(ConnectionError):
        await client.send(Ping(type="ping"))

    # The same client connects again; handlers stay.
    await client.connect()
    assert client.connected is True
    await client.close()
    await asyncio.sleep(0.05)
    assert closes == [True]  # a deliberate close is not a lost connection


async def test_error_replies_raise_and_timeouts_expire(scripted: Any) -> None:
    async def refuse_or_ignore(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if frame["type"] == "ping":
            return  # never answered
        await ws.send_json(
            {"type": "error", "id": frame["id"], "code": "nope", "message": "not today"}
        )

    client = SignalingClient(await scripted(refuse_or_ignore), "token")
    await client.connect()
    with pytest.raises(SignalingError) as refused:
        await client.request(SignalOut(type="signal", to="x", candidate=None))
    assert (refused.value.code, refused.value.message) == ("nope", "not today")
    with pytest.raises(TimeoutError):
        await client.request(Ping(type="ping"), timeout=0.1)
    assert client.connected is True
    await client.close()
