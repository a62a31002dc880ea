"""Real session servers on 127.0.0.1 (port 0) and kits talking to them over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance.config import ServerConfig
from appliance.server import SessionServer
from appliance.signaling.client import ServerApi, SignalingClient
from appliance.signaling.messages import (
    Join,
    Joined,
    ParticipantState,
    Reply,
    Request,
    ServerMessage,
)

M = TypeVar("M")
QUIET = 0.15  # how long "nothing else arrives" is watched for


class Kit:
    """One signed-in user: a SignalingClient whose events land in a queue."""

    def __init__(self, server: SessionServer, uid: str, auth_token: str) -> None:
        self.uid = uid
        self.auth_token = auth_token
        self.server = server
        self.client = SignalingClient(server.url, auth_token, client_name=f"test {uid}")
        self.api = ServerApi(server.url)
        self.events: asyncio.Queue[ServerMessage] = asyncio.Queue()
        self.client.on_event(self.events.put_nowait)

    async def connect(self) -> Kit:
        await self.client.connect(timeout=5)
        return self

    async def request(self, message: Request) -> Reply:
        return await self.client.request(message, timeout=5)

    async def next(self, kind: type[M] | None = None, timeout: float = 3) -> Any:
        event = await asyncio.wait_for(self.events.get(), timeout)
        if kind is not None:
            assert isinstance(event, kind), f"{self.uid} expected {kind.__name__}, got {event!r}"
        return event

    async def quiet(self, wait: float = QUIET) -> None:
        """Nothing (more) arrives."""
        await asyncio.sleep(wait)
        assert self.events.empty(), f"{self.uid} got unexpected {self.events.get_nowait()!r}"

    async def token(self, session_id: str) -> str:
        return (await self.api.create_token(self.auth_token, session_id)).token

    async def join(self, session_id: str, **state: bool) -> Joined:
        reply = await self.request(
            Join(
                type="join",
                session_id=session_id,
                call_token=await self.token(session_id),
                state=ParticipantState(**state),
            )
        )
        assert isinstance(reply, Joined)
        return reply

    async def close(self) -> None:
        await self.client.close()
        await self.api.close()


ServerFactory = Callable[..., Awaitable[SessionServer]]
KitFactory = Callable[..., Awaitable[Kit]]


async def kits(make_kit: KitFactory, *uids: str) -> list[Kit]:
    return [await make_kit(uid) for uid in uids]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    servers: list[SessionServer] = []

    async def make(database: Path | str | None = None, **config: Any) -> SessionServer:
        settings: dict[str, Any] = {"listen": "127.0.0.1:0", "reconnect_grace": 0.3}
        server = SessionServer(
            ServerConfig(**(settings | config)),
            database or tmp_path / f"server{len(servers)}.db",
        )
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> SessionServer:
    return await make_server()


@pytest.fixture
async def make_kit(server: SessionServer) -> AsyncIterator[KitFactory]:
    """``await make_kit("alice")`` creates the user (once) and connects a new client."""
    kits: list[Kit] = []
    tokens: dict[tuple[int, str], str] = {}

    async def make(uid: str, *, on: SessionServer | None = None, connect: bool = True) -> Kit:
        target = on or server
        key = (id(target), uid)
        if key not in tokens:
            tokens[key] = await target.create_user(uid, uid.capitalize())
        kit = Kit(target, uid, tokens[key])
        kits.append(kit)
        return await kit.connect() if connect else kit

    yield make
    for kit in kits:
        await kit.close()
