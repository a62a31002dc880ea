"""A stand-in for systemd's end of ``NOTIFY_SOCKET``: a datagram socket that keeps every
message the daemon sends, with the time it arrived."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic()
    fields: dict[str, str]

    def __contains__(self, line: str) -> bool:
        key, _, value = line.partition("=")
        return self.fields.get(key) == value


class NotifyListener:
    def __init__(self, address: str) -> None:
        """``address``: a path, or ``@name`` for the abstract namespace (as in
        ``NOTIFY_SOCKET``)."""
        self.env_value = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.setblocking(False)
        self.messages: list[Message] = []
        self._reader: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def _record(self, data: bytes) -> None:
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        self.messages.append(Message(time.monotonic(), fields))

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._record(await loop.sock_recv(self._sock, 65536))

    def _read_in_thread(self) -> None:
        while not self._closing.is_set():
            try:
                self._record(self._sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def start(self, *, in_thread: bool = False) -> None:
        """Read on the event loop, or ``in_thread`` to see (and timestamp) what arrives
        while the loop itself is blocked."""
        if in_thread:
            self._sock.settimeout(0.05)
            self._thread = threading.Thread(target=self._read_in_thread, daemon=True)
            self._thread.start()
        else:
            self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._thread is not None:
            self._closing.set()
            await asyncio.to_thread(self._thread.join)
        self._sock.close()

    def with_line(self, line: str) -> list[Message]:
        return [m for m in self.messages if line in m]

    def values(self, key: str) -> list[str]:
        return [m.fields[key] for m in self.messages if key in m.fields]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def listening(address: str, *, in_thread: bool = False) -> AsyncIterator[NotifyListener]:
    listener = NotifyListener(address)
    listener.start(in_thread=in_thread)
    try:
        yield listener
    finally:
        await listener.close()
