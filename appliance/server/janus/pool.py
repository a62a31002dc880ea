"""The Janus servers one session server places rooms on.

Each ``JanusServer`` keeps one control session with a VideoRoom handle, opened when first
needed and opened again after Janus went away. ``JanusPool.candidates`` orders the servers
for a new room: least loaded first, where the load is the participants this session server
placed there or, when the admin API is configured, the sessions Janus reports (so rooms of
other session servers sharing it count too), whichever is higher. A server that failed is
left out for a while and then tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from appliance.config import JanusServerConfig
from appliance.media.janus.api import (
    JanusAdmin,
    JanusConnection,
    JanusError,
    JanusGone,
    JanusHandle,
    PluginReply,
)

log = logging.getLogger(__name__)

RETRY_DOWN_AFTER = 10.0  # seconds a failed server is skipped for new rooms


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


class JanusServer:
    def __init__(self, config: JanusServerConfig) -> None:
        self.config = config
        self.url = config.url
        self.public_url = config.public_url or config.url
        self.api_secret = _secret(config.api_secret)
        self.room_admin_key = _secret(config.room_admin_key)
        admin_secret = _secret(config.admin_secret)
        self.admin = (
            JanusAdmin(config.admin_url, admin_secret)
            if config.admin_url is not None and admin_secret is not None
            else None
        )
        self.participants = 0  # placed here by this session server, now
        self.rooms = 0
        self._down_until = 0.0
        self._connection: JanusConnection | None = None
        self._handle: JanusHandle | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<Janus {self.url}>"

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def mark_down(self, reason: str) -> None:
        log.warning("Janus at %s failed (%s); new rooms go elsewhere for now", self.url, reason)
        self._down_until = time.monotonic() + RETRY_DOWN_AFTER

    async def load(self) -> int:
        if self.admin is None:
            return self.participants
        sessions = await self.admin.sessions()
        ours = 1 if self._connection is not None and self._connection.lost is None else 0
        return max(self.participants, len(sessions) - ours)

    async def request(self, body: dict[str, Any]) -> PluginReply:
        """One VideoRoom request on the control handle (the plugin's admin_key added)."""
        if self.room_admin_key is not None and body.get("request") in ("create", "list"):
            body = {**body, "admin_key": self.room_admin_key}
        handle = await self._control()
        try:
            return await handle.message(body)
        except JanusGone:
            await self._drop()
            raise

    async def close(self) -> None:
        await self._drop()

    async def _control(self) -> JanusHandle:
        async with self._lock:
            connection = self._connection
            if connection is not None and connection.lost is None and self._handle is not None:
                return self._handle
            await self._drop_unlocked()
            connection = await JanusConnection.open(self.url, api_secret=self.api_secret)
            try:
                session = await connection.create_session()
                handle = await session.attach()
            except BaseException:
                await connection.close()
                raise
            self._connection, self._handle = connection, handle
            return handle

    async def _drop(self) -> None:
        async with self._lock:
            await self._drop_unlocked()

    async def _drop_unlocked(self) -> None:
        connection, self._connection, self._handle = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


class JanusPool:
    def __init__(self, configs: list[JanusServerConfig]) -> None:
        self.servers = [JanusServer(config) for config in configs]

    async def candidates(self) -> list[JanusServer]:
        """Servers for a new room, least loaded first; those that failed lately last."""
        up = [s for s in self.servers if not s.down]
        loads = await asyncio.gather(*(s.load() for s in up), return_exceptions=True)
        ranked: list[tuple[int, int, int, JanusServer]] = []
        for order, (server, load) in enumerate(zip(up, loads, strict=True)):
            if isinstance(load, BaseException):
                if not isinstance(load, JanusError | OSError | TimeoutError):
                    raise load
                server.mark_down(f"admin API: {load}")
                continue
            ranked.append((load, server.rooms, order, server))
        ranked.sort(key=lambda item: item[:3])
        answering = [server for *_, server in ranked]
        return answering + [s for s in self.servers if s not in answering]

    async def close(self) -> None:
        await asyncio.gather(*(server.close() for server in self.servers))
