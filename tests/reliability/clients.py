"""Simulated signaling clients: bare WebSockets speaking the protocol, for servers under
floods, fuzzing and load (no media, no kit)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from appliance.server import SessionServer


@dataclass
class Client:
    """One signed-in socket. ``inbox`` keeps every text frame it was sent, parsed."""

    uid: str
    auth_token: str
    ws: aiohttp.ClientWebSocketResponse
    inbox: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    _reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read(), name=f"reader {self.uid}")

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self.inbox.append(json.loads(frame.data))
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.inbox if m.get("type") == kind]

    async def reply(self, request_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """The answer carrying ``request_id``."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.inbox:
                    if message.get("id") == request_id:
                        return message
                if self.closed.is_set():
                    raise ConnectionError(f"{self.uid} closed ({self.close_code}) without a reply")
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


async def sign_in(
    http: aiohttp.ClientSession, url: str, uid: str, auth_token: str, *, read: bool = True
) -> Client:
    ws = await http.ws_connect(f"{url}/v1/ws", max_msg_size=0)
    await ws.send_json({"type": "hello", "auth_token": auth_token, "id": 0})
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome", welcome
    client = Client(uid, auth_token, ws)
    if read:
        client.start_reading()
    return client


async def pair_in_session(
    server: SessionServer, http: aiohttp.ClientSession, session_id: str, uids: tuple[str, str]
) -> tuple[Client, Client]:
    """Two new users in one session, both reading; the join notices are in their inboxes."""
    clients = []
    for uid in uids:
        token = await server.create_user(uid, uid.title())
        client = await sign_in(http, server.url, uid, token)
        call_token = server.tokens.issue(uid, session_id).token
        await client.send(
            {"type": "join", "session_id": session_id, "call_token": call_token, "id": 1}
        )
        joined = await client.reply(1)
        assert joined["type"] == "joined", joined
        clients.append(client)
    return clients[0], clients[1]


def numbered_signal(to: str, number: int, padding: int = 0) -> dict[str, Any]:
    """An ICE-candidate-sized signal whose candidate carries ``number``."""
    candidate = f"candidate:{number} 1 udp 2122260223 10.0.0.2 {50000 + number % 10000} typ host"
    return {
        "type": "signal",
        "to": to,
        "candidate": {"candidate": candidate + " x" * padding, "sdpMid": "0"},
    }


def signal_numbers(client: Client, sender: str) -> list[int]:
    """The numbers of the signals ``client`` got from ``sender``, in arrival order."""
    return [
        int(m["candidate"]["candidate"].split()[0].removeprefix("candidate:"))
        for m in client.received("signal")
        if m["from"] == sender and m["candidate"] is not None
    ]
