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
import time
from collections import deque
from collections.abc import Callable, Iterator

from aiohttp import WSCloseCode, web

from appliance.server.store import User
from appliance.signaling.messages import Message, dump

log = logging.getLogger(__name__)

# A client this far behind is not reading; it is cut off rather than buffered for ever.
MAX_OUTBOX = 1024
MAX_OUTBOX_BYTES = 4 << 20  # a few dozen full-size SDPs
FLUSH_TIMEOUT = 2.0  # how long a connection being closed may take to send what is queued


OnRelayed = Callable[[float], None]  # seconds from a signal's arrival to its delivery


class Connection:
    def __init__(
        self,
        connection_id: int,
        ws: web.WebSocketResponse,
        user: User,
        on_relayed: OnRelayed | None = None,
    ) -> None:
        self.id = connection_id
        self.ws = ws
        self.user = user
        self._on_relayed = on_relayed
        # (text, loop time a relayed signal arrived at the server, or None)
        self._outbox: deque[tuple[str, float | None]] = deque()
        self._outbox_bytes = 0
        self._ready = asyncio.Event()
        self._overflowed = False
        self._close_after: tuple[int, bytes] | None = None  # (code, reason) once drained
        self._drained = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @property
    def uid(self) -> str:
        return self.user.uid

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.uid}>"

    def send(self, message: Message, *, relayed_since: float | None = None) -> None:
        """Queue ``message``; ``relayed_since``: the loop time the signal it relays arrived,
        so the relay latency is measured once it is written to the socket."""
        if self._overflowed or self._close_after is not None:
            return
        text = dump(message)
        if len(self._outbox) >= MAX_OUTBOX or self._outbox_bytes + len(text) > MAX_OUTBOX_BYTES:
            log.warning(
                "%r is not reading its messages (%d queued, %d bytes); closing it",
                self,
                len(self._outbox),
                self._outbox_bytes,
            )
            self._overflowed = True
            self._outbox.clear()
            self._outbox_bytes = 0
            # The writer may be stuck waiting for the socket to drain: replace it.
            if self._writer is not None:
                self._writer.cancel()
                self._writer = asyncio.create_task(self._cut_off(), name=f"ws-cut-{self.id}")
            return
        self._outbox.append((text, relayed_since))
        self._outbox_bytes += len(text)
        self._ready.set()

    def close_after(self, last: Message, code: int, reason: bytes) -> None:
        """Send ``last`` after whatever is queued, then close the socket with ``code``.
        Nothing sent after this call goes out."""
        if self._close_after is None:
            self.send(last)
            self._close_after = (code, reason)
            self._ready.set()

    async def closed(self) -> None:
        """Waits (a bounded time) for a ``close_after`` to have sent its last message."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), FLUSH_TIMEOUT)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    async def stop(self) -> None:
        """The socket is gone or going: whatever is still queued cannot be delivered (a
        client cut off for not reading is still sent its close frame)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            if not self._overflowed:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._outbox:
                    text, relayed_since = self._outbox.popleft()
                    self._outbox_bytes -= len(text)
                    try:
                        await self.ws.send_str(text)
                    except (ConnectionError, RuntimeError):
                        return  # the reader side notices the close and cleans up
                    if relayed_since is not None and self._on_relayed is not None:
                        now = asyncio.get_running_loop().time()
                        self._on_relayed(max(0.0, now - relayed_since))
                if self._close_after is not None:
                    code, reason = self._close_after
                    await self.ws.close(code=code, message=reason)
                    return
        finally:
            self._drained.set()

    async def _cut_off(self) -> None:
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow")


# Who left when is kept this long at most (longer than any reconnect grace), and pruned
# once that many are remembered.
LEFT_KEPT = 3600.0
LEFT_PRUNE_AT = 256


class ConnectionRegistry:
    """Every authenticated connection, by user (a user may have several)."""

    def __init__(self, on_relayed: OnRelayed | None = None) -> None:
        self._on_relayed = on_relayed
        self._by_uid: dict[str, dict[int, Connection]] = {}
        self._ids = itertools.count(1)
        self._count = 0
        # When each user's last connection went (monotonic): a kit in a network blip is
        # "reconnecting", not offline, for a while. One entry per user at most.
        self._left: dict[str, float] = {}

    def __len__(self) -> int:
        return self._count

    def add(self, ws: web.WebSocketResponse, user: User) -> Connection:
        connection = Connection(next(self._ids), ws, user, self._on_relayed)
        self._by_uid.setdefault(user.uid, {})[connection.id] = connection
        self._left.pop(user.uid, None)
        self._count += 1
        return connection

    def remove(self, connection: Connection) -> None:
        connections = self._by_uid.get(connection.uid)
        if connections is not None and connections.pop(connection.id, None) is not None:
            self._count -= 1
            if not connections:
                del self._by_uid[connection.uid]
                now = time.monotonic()
                if len(self._left) >= LEFT_PRUNE_AT:  # guests come and go: keep it small
                    self._left = {u: t for u, t in self._left.items() if now - t < LEFT_KEPT}
                self._left[connection.uid] = now

    def of(self, uid: str) -> list[Connection]:
        return list(self._by_uid.get(uid, {}).values())

    def online(self, uid: str) -> bool:
        return uid in self._by_uid

    def reachable(self, uid: str, grace: float) -> bool:
        """Online, or gone less than ``grace`` seconds ago (it may be reconnecting)."""
        if uid in self._by_uid:
            return True
        left = self._left.get(uid)
        return left is not None and time.monotonic() - left < grace

    def forget(self, uid: str) -> None:
        """A removed user: no longer even reconnecting."""
        self._left.pop(uid, None)

    def send_to_user(self, uid: str, message: Message) -> None:
        for connection in self.of(uid):
            connection.send(message)

    def __iter__(self) -> Iterator[Connection]:
        for connections in list(self._by_uid.values()):
            yield from list(connections.values())
