"""One signaling WebSocket per Connection, each with its own ordered outbox.

Session and ringing logic only ever *queue* messages (``send`` never awaits), so a state
change and the messages it causes happen in one step of the event loop, and a slow or dead
client cannot hold up anybody else. A writer task per connection drains the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web

from appliance.server.store import User
from appliance.signaling.messages import Message, dump

if TYPE_CHECKING:
    from appliance.server.rooms import Session

log = logging.getLogger(__name__)

# A client this far behind is not reading; it is cut off rather than buffered for ever.
MAX_OUTBOX = 1024


class Connection:
    def __init__(self, connection_id: int, ws: web.WebSocketResponse, user: User) -> None:
        self.id = connection_id
        self.ws = ws
        self.user = user
        self.session: Session | None = None  # set by Rooms while this connection is in one
        self._outbox: deque[str] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        self._writer: asyncio.Task[None] | None = None

    @property
    def uid(self) -> str:
        return self.user.uid

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.uid}>"

    def send(self, message: Message) -> None:
        if self._overflowed:
            return
        if len(self._outbox) >= MAX_OUTBOX:
            log.warning("%r is not reading its messages; closing it", self)
            self._overflowed = True
            self._outbox.clear()
        else:
            self._outbox.append(dump(message))
        self._ready.set()

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    async def stop(self) -> None:
        """The socket is gone or going: whatever is still queued cannot be delivered."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _write(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._overflowed:
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow")
                return
            while self._outbox:
                text = self._outbox.popleft()
                try:
                    await self.ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    return  # the reader side notices the close and cleans up


class ConnectionRegistry:
    """Every authenticated connection, by user (a user may have several)."""

    def __init__(self) -> None:
        self._by_uid: dict[str, dict[int, Connection]] = {}
        self._ids = itertools.count(1)

    def add(self, ws: web.WebSocketResponse, user: User) -> Connection:
        connection = Connection(next(self._ids), ws, user)
        self._by_uid.setdefault(user.uid, {})[connection.id] = connection
        return connection

    def remove(self, connection: Connection) -> None:
        connections = self._by_uid.get(connection.uid)
        if connections is not None:
            connections.pop(connection.id, None)
            if not connections:
                del self._by_uid[connection.uid]

    def of(self, uid: str) -> list[Connection]:
        return list(self._by_uid.get(uid, {}).values())

    def online(self, uid: str) -> bool:
        return uid in self._by_uid

    def send_to_user(self, uid: str, message: Message) -> None:
        for connection in self.of(uid):
            connection.send(message)

    def __iter__(self) -> Iterator[Connection]:
        for connections in list(self._by_uid.values()):
            yield from list(connections.values())
