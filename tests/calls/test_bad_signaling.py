"""Malformed signaling gets an error and hurts no call in progress."""

import asyncio
import json

import aiohttp

from appliance.server import SessionServer
from tests.kits import KitFactory

GARBAGE: list[str | bytes] = [
    "not json",
    "[1, 2, 3]",
    '"a string"',
    "{}",
    '{"type": "teleport"}',
    '{"type": "join"}',
    '{"type": "join", "session_id": "bad id!", "call_token": "x"}',
    '{"type": "signal", "to": "room-a"}',
    '{"type": "signal", "to": "room-a", "description": {"type": "offer", "sdp": 5}}',
    '{"type": "state", "state": {"muted": "very"}}',
    '{"type": "call-accept", "session_id": 12}',
    '{"type": "ping", "id": -1}',
    '{"type": "ping", "id": 1, "extra": true}',
    b"\x00\x01binary",
]


async def test_garbage_gets_errors_and_the_call_goes_on(
    kits: KitFactory, server: SessionServer
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("steady")
    await b.join("steady")
    await a.wait_for_video_from("room-b")
    intruder_token = await server.create_user("mallory", "Mallory")

    async with aiohttp.ClientSession() as http:
        # Before hello: refused and closed.
        async with http.ws_connect(f"{server.url}/v1/ws") as ws:
            await ws.send_str('{"type": "join", "session_id": "steady", "call_token": "x"}')
            reply = json.loads((await ws.receive()).data)
            assert reply["type"] == "error"
            assert reply["code"] == "unauthorized"
        async with http.ws_connect(f"{server.url}/v1/ws") as ws:
            await ws.send_json({"type": "hello", "auth_token": intruder_token, "id": 1})
            assert (await ws.receive_json())["type"] == "welcome"
            for frame in GARBAGE:
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                reply = await asyncio.wait_for(ws.receive_json(), 5)
                assert reply["type"] == "error", frame
                assert reply["code"] in ("bad-message", "not-in-session"), (frame, reply)
                assert reply["message"]
            # Still connected and served after all of it.
            await ws.send_json({"type": "ping", "id": 7})
            assert (await ws.receive_json()) == {"type": "pong", "id": 7}

    # The call in progress never noticed.
    await a.wait_for_video_from("room-b")
    await b.wait_to_hear(a.tone_hz)
    assert not a.named("onWarning")
    assert not a.named("onCallEnded")
