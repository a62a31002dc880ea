"""What a browser guest can do with what a one-use invite bought: join the invited session
and nothing else, through the kit's proxy or straight at the session server, and only
while that session lasts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from appliance.config import ApiLimits
from appliance.daemon import Daemon
from tests.api.daemon import Api, running_daemon


async def _guest(api: Api, session_id: str = "town-hall") -> dict[str, Any]:
    await api.ok("PUT", "/session", {"session_id": session_id})
    invite = await api.ok("POST", "/invites", {"ttl": 600})
    status, guest = await api.call(
        "POST", "/join", {"code": invite["code"], "name": "Ann"}, token=""
    )
    assert status == 200, guest
    return guest


async def _server_call(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, headers=headers, json=body) as response:
        return response.status, await response.json(content_type=None)


async def test_a_guest_token_opens_only_its_session_at_the_server(kit: Daemon, api: Api) -> None:
    assert kit.server is not None
    await kit.server.create_user("room-b", "Room B")
    guest = await _guest(api)
    token, server = guest["auth_token"], kit.server.url
    async with aiohttp.ClientSession() as http:
        status, body = await _server_call(http, "GET", server + "/v1/users", token)
        assert status == 403 and body["error"]["code"] == "guest-forbidden"
        status, body = await _server_call(http, "GET", server + "/v1/calls", token)
        assert status == 403
        status, body = await _server_call(
            http, "POST", server + "/v1/tokens", token, {"session_id": "board-meeting"}
        )
        assert status == 403 and body["error"]["code"] == "guest-forbidden"
        status, body = await _server_call(
            http, "POST", server + "/v1/tokens", token, {"session_id": "town-hall"}
        )
        assert status == 200
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["exp"] <= time.time() + 4 * 3600 + 5

        # Straight at the session server's WebSocket: no ringing, no other session.
        ws = await http.ws_connect(server.replace("http", "ws", 1) + "/v1/ws")
        await ws.send_json({"type": "hello", "id": 1, "auth_token": token})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        await ws.send_json(
            {"type": "call-initiate", "id": 2, "receiver": "room-b", "call_type": "video"}
        )
        reply = await ws.receive_json(timeout=10)
        assert (reply["type"], reply["id"], reply["code"]) == ("error", 2, "guest-forbidden")
        await ws.send_json(
            {"type": "join", "id": 3, "session_id": "board-meeting", "call_token": body["token"]}
        )
        reply = await ws.receive_json(timeout=10)
        assert (reply["type"], reply["code"]) == ("error", "guest-forbidden")
        await ws.close()


async def test_the_proxy_checks_every_frame(kit: Daemon, api: Api) -> None:
    assert kit.server is not None and kit.api is not None
    room_b = await kit.server.create_user("room-b", "Room B")
    guest = await _guest(api)
    async with aiohttp.ClientSession() as http:
        # room-b listens for rings on the session server
        kit_b = await http.ws_connect(kit.server.url.replace("http", "ws", 1) + "/v1/ws")
        await kit_b.send_json({"type": "hello", "id": 1, "auth_token": room_b})
        assert (await kit_b.receive_json(timeout=10))["type"] == "welcome"

        ws = await http.ws_connect(kit.api.url + "/api/v1/signaling")
        await ws.send_json({"type": "hello", "id": 1, "auth_token": guest["auth_token"]})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        for attack in (
            {"type": "call-initiate", "id": 2, "receiver": "room-b", "call_type": "video"},
            {"type": "call-accept", "id": 3, "session_id": "town-hall"},
            {"type": "join", "id": 4, "session_id": "board-meeting", "call_token": "x.y.z"},
            {"type": "hello", "id": 5, "auth_token": guest["auth_token"]},
        ):
            await ws.send_json(attack)
            reply = await ws.receive_json(timeout=10)
            assert (reply["type"], reply["id"], reply["code"]) == (
                "error",
                attack["id"],
                "guest-forbidden",
            ), reply
        await ws.send_json(
            {"type": "join", "id": 6, "session_id": "town-hall", "call_token": guest["call_token"]}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "joined"
        await ws.close()
        # room-b was never rung
        await kit_b.send_json({"type": "ping", "id": 9})
        assert (await kit_b.receive_json(timeout=10)) == {"type": "pong", "id": 9}
        await kit_b.close()


async def test_a_guest_ends_with_its_session(kit: Daemon, api: Api) -> None:
    assert kit.server is not None and kit.api is not None
    guest = await _guest(api)
    token, server = guest["auth_token"], kit.server.url
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(kit.api.url + "/api/v1/signaling")
        await ws.send_json({"type": "hello", "id": 1, "auth_token": token})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        await ws.send_json(
            {"type": "join", "id": 2, "session_id": "town-hall", "call_token": guest["call_token"]}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "joined"
        await api.ok("DELETE", "/session")  # the kit leaves: the 1:1 session is over
        async with asyncio.timeout(10):
            while True:
                status, _ = await _server_call(
                    http, "POST", server + "/v1/tokens", token, {"session_id": "town-hall"}
                )
                if status == 401:
                    break
                await asyncio.sleep(0.05)
        async with asyncio.timeout(10):  # and its connection is closed
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
        again = await http.ws_connect(server.replace("http", "ws", 1) + "/v1/ws")
        await again.send_json({"type": "hello", "id": 1, "auth_token": token})
        reply = await again.receive_json(timeout=10)
        assert (reply["type"], reply["code"]) == ("error", "unauthorized")
        await again.close()


async def test_a_proxy_socket_that_never_says_hello_is_closed_after_the_hello_timeout(
    tmp_path: Path,
) -> None:
    # The shipped default is 10 s; a short one here shows it is the one applied.
    assert ApiLimits().hello_timeout == 10.0
    async with running_daemon(tmp_path, api={"limits": {"hello_timeout": 0.3}}) as kit:
        assert kit.api is not None
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(kit.api.url + "/api/v1/signaling")
            started = time.monotonic()
            closed = await ws.receive(timeout=30)  # says nothing: the kit closes it
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert time.monotonic() - started < 9  # well before the 10 s default
