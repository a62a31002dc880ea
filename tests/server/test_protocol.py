"""Whatever a client sends over the WebSocket gets an answer naming what was wrong, on a
connection that stays open, while other sessions on the same server carry on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from appliance.server import SessionServer
from appliance.signaling.messages import MAX_MESSAGE_BYTES, Description, SignalIn, SignalOut
from tests.server.conftest import Kit, KitFactory

OFFER = Description(type="offer", sdp="v=0\r\n")


class RawSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: Any) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        frame = await self.ws.receive(timeout=3)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        answer: dict[str, Any] = json.loads(frame.data)
        return answer


@pytest.fixture
async def raw(server: SessionServer) -> AsyncIterator[Any]:
    """Opens a bare WebSocket to the server; closed at the end."""
    http = aiohttp.ClientSession()

    async def open_socket() -> RawSocket:
        return RawSocket(await http.ws_connect(server.url + "/v1/ws"))

    yield open_socket
    await http.close()


async def greeted(server: SessionServer, raw: Any, uid: str = "mallory") -> RawSocket:
    token = await server.create_user(uid, uid.title())
    socket: RawSocket = await raw()
    await socket.send({"type": "hello", "auth_token": token, "id": 1})
    assert await socket.receive() == {"type": "welcome", "id": 1, "uid": uid, "name": uid.title()}
    return socket


async def test_hello_first_or_unauthorized(server: SessionServer, raw: Any) -> None:
    await server.create_user("alice", "Alice")
    for first in (
        {"type": "ping", "id": 4},
        {"type": "hello", "auth_token": "wrong", "id": 5},
        "not json at all",
        {"type": "hello"},
    ):
        socket = await raw()
        await socket.send(first)
        answer = await socket.receive()
        assert answer["type"] == "error" and answer["code"] == "unauthorized"
        assert answer["id"] == (first.get("id") if isinstance(first, dict) else None)
        closing = await socket.ws.receive(timeout=3)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.POLICY_VIOLATION


MALFORMED: list[tuple[Any, str | None, int | None]] = [
    # (frame, the field the message must name, the id the error must carry)
    ("{not json", "body", None),
    ("[1, 2, 3]", "body", None),
    ('"a string"', "body", None),
    ("[" * 40_000, "body", None),
    ({"id": 7}, "type", 7),
    ({"type": "dance", "id": 8}, "type", 8),
    ({"type": 5}, "type", None),
    ({"type": "join", "id": 9}, "session_id", 9),
    ({"type": "join", "session_id": "a b", "call_token": "t"}, "session_id", None),
    (
        {"type": "signal", "to": "bob", "description": {"type": "pranswer", "sdp": ""}},
        "description.type",
        None,
    ),
    ({"type": "signal", "to": "bob", "sdp": "x"}, "sdp", None),
    ({"type": "state", "state": {"muted": "maybe"}, "id": 10}, "state.muted", 10),
    ({"type": "state", "state": {"audio_only": True}}, "state.audio_only", None),
    ({"type": "ping", "id": -1}, "id", None),
    ({"type": "ping", "id": "eleven"}, "id", None),
    (
        {"type": "call-initiate", "receiver": "bob", "call_type": "hologram", "id": 12},
        "call_type",
        12,
    ),
    ({"type": "call-accept", "id": 13}, "session_id", 13),
    ({"type": "hello", "auth_token": "again", "id": 14}, "type", 14),
]


async def test_malformed_messages_are_named_and_harmless(
    server: SessionServer, raw: Any, make_kit: KitFactory
) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    await alice.join("busy-room")
    await bob.join("busy-room")
    mallory = await greeted(server, raw)

    for frame, field, request_id in MALFORMED:
        await mallory.send(frame)
        answer = await mallory.receive()
        assert answer["type"] == "error", frame
        assert answer["code"] == "bad-message", frame
        assert answer["message"].startswith(f"{field}:"), (frame, answer["message"])
        assert answer["id"] == request_id, frame
        await _still_relaying(alice, bob)

    await mallory.ws.send_bytes(b"\x00\x01")
    answer = await mallory.receive()
    assert (answer["code"], answer["message"].split(":")[0]) == ("bad-message", "body")

    # Still open, still served.
    await mallory.send({"type": "ping", "id": 99})
    assert await mallory.receive() == {"type": "pong", "id": 99}


async def test_success_without_an_id_is_silent(server: SessionServer, raw: Any) -> None:
    socket = await greeted(server, raw)
    await socket.send({"type": "ping"})
    await socket.send({"type": "leave"})
    await socket.send({"type": "ping", "id": 2})
    assert await socket.receive() == {"type": "pong", "id": 2}  # nothing came before it


async def test_oversized_frames_close_with_1009(
    server: SessionServer, raw: Any, make_kit: KitFactory
) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    await alice.join("room")
    await bob.join("room")
    socket = await greeted(server, raw)
    await socket.send({"type": "ping", "id": 1, "pad": "x" * MAX_MESSAGE_BYTES})
    closing = await socket.ws.receive(timeout=3)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await _still_relaying(alice, bob)


async def _still_relaying(alice: Kit, bob: Kit) -> None:
    await alice.client.send(SignalOut(type="signal", to="bob", description=OFFER))
    relayed = await bob.next(SignalIn, timeout=2)
    assert relayed.from_ == "alice"
