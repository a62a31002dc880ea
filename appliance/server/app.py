"""SessionServer: users, call tokens, signaling, ringing and the call log in one aiohttp app.

The daemon embeds it (``server.embedded``), ``callbox server`` runs it alone, and tests run
several in one process: all of its state lives on the instance.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

from aiohttp import WSCloseCode, web
from pydantic import ValidationError

from appliance.config import ServerConfig, split_hostport
from appliance.netguard import ConnectionGuard, start_site
from appliance.server.api import MAX_BODY_BYTES, HttpApi, NewUser, json_errors
from appliance.server.connection import ConnectionRegistry
from appliance.server.errors import ServerError, UnknownUser
from appliance.server.janus.pool import JanusPool
from appliance.server.janus.rooms import JanusRooms
from appliance.server.joins import JoinRequest, JoinRequests
from appliance.server.metrics import ServerMetrics
from appliance.server.ringing import Ringing
from appliance.server.rooms import Rooms
from appliance.server.store import Store, User
from appliance.server.tokens import CallTokens, new_auth_token, new_secret
from appliance.server.websocket import SignalingEndpoint
from appliance.signaling.messages import Error
from appliance.storage import atomic_write_text
from appliance.tasks import TaskSet
from appliance.tls import ServerTls
from appliance.validation import describe

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin.key"
# How long a guest's auth token lasts at most, when the session it was invited to goes on.
GUEST_TTL = 4 * 3600.0
SHUTDOWN_TIMEOUT = 5.0
KEEPALIVE_TIMEOUT = 15.0  # an idle kept-alive HTTP connection is closed after this


class SessionServer:
    def __init__(
        self, config: ServerConfig, database: Path | str, *, tls: ServerTls | None = None
    ) -> None:
        self.config = config
        self.tls = tls  # https and wss when set (appliance.tls.server_tls)
        self.store = Store(database)
        self.tokens = CallTokens(config.token_ttl)
        self.metrics = ServerMetrics(self)
        self.joins = JoinRequests()  # kits that found the server on the LAN and asked in
        self.connections = ConnectionRegistry(on_relayed=self.metrics.observer())
        self.rooms = Rooms(
            self.tokens,
            grace=config.reconnect_grace,
            on_session_over=self._session_over,
            on_member_left=self._member_left,
        )
        # With media = "janus", each session's media runs on a VideoRoom of its own.
        self.janus = (
            JanusRooms(JanusPool(config.janus), tokens=self.tokens, rooms=self.rooms)
            if config.media == "janus"
            else None
        )
        self.ringing = Ringing(
            store=self.store,
            connections=self.connections,
            rooms=self.rooms,
            ring_timeout=config.ring_timeout,
            join_timeout=config.join_timeout,
        )
        self._signaling = SignalingEndpoint(
            store=self.store,
            connections=self.connections,
            rooms=self.rooms,
            ringing=self.ringing,
            janus=self.janus,
            limits=config.limits,
            reconnect_grace=config.reconnect_grace,
        )
        self.app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
        self.app.add_routes([*HttpApi(self).routes(), web.get("/v1/ws", self._signaling.handle)])
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._admin_key: str | None = None
        self.guard: ConnectionGuard | None = None
        self._background = TaskSet(log)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the session server is not running")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on (after start)."""
        if self._runner is None:
            raise RuntimeError("the session server is not running")
        return int(self._runner.addresses[0][1])

    @property
    def admin_key(self) -> str:
        if self._admin_key is None:
            raise RuntimeError("the session server has not started")
        return self._admin_key

    async def start(self) -> None:
        if self._runner is not None:
            return
        await self.store.open()
        try:
            self.tokens.use_secret(await self.store.meta("jwt_secret", new_secret))
            if self.janus is not None:
                self.janus.use_secret(await self.store.meta("janus_secret", new_secret))
            self._admin_key = self.config.admin_key or await self._generated_admin_key()
            self.tokens.load_session_ends(await self.store.session_ends_since(self.tokens.horizon))
            # Guests whose sessions ended while the server was down go now; so do expired.
            ended = await self.store.remove_guests(now=time.time())
            for session_id in self.tokens.ended_sessions():
                ended += await self.store.remove_guests(session_id=session_id, now=time.time())
            if ended:
                log.info("removed %d guests of ended sessions", len(ended))
            if closed := await self.store.close_interrupted_calls(time.time()):
                log.info("closed %d calls interrupted by the last shutdown", closed)
            host, port = split_hostport(self.config.listen)
            runner, guard = await start_site(
                self.app,
                "session server",
                host,
                port,
                self.config.limits,
                ssl_context=self.tls.context if self.tls is not None else None,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
            )
        except BaseException:
            await self.store.close()
            raise
        self._runner = runner
        self.guard = guard
        bound_port = runner.addresses[0][1]
        scheme = "https" if self.tls is not None else "http"
        self._url = f"{scheme}://{_reachable_host(host)}:{bound_port}"
        log.info("session server listening on %s", self._url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self._signaling.close_all()
        await runner.cleanup()
        await self._background.wait()
        self.ringing.close()
        self.rooms.close()
        if self.janus is not None:
            await self.janus.close()
        await self.store.close()
        self._url = None
        log.info("session server stopped")

    # --- figures for GET /metrics ----------------------------------------------------------

    def live_sessions(self) -> int:
        return len(self.rooms)

    def live_connections(self) -> int:
        return len(self.connections)

    def refusals(self) -> dict[str, int]:
        refused = dict(self._signaling.refused)
        if self.guard is not None:
            refused["per-address"] = self.guard.refused
            refused["header-timeout"] = self.guard.timed_out
        return refused

    async def create_user(
        self,
        uid: str,
        name: str,
        avatar: str | None = None,
        *,
        session_id: str | None = None,
        ttl: float | None = None,
    ) -> str:
        """Creates a user and returns its auth token (only its hash is kept). With
        ``session_id``, a guest: it may join that session and nothing else, and its token
        ends when the session does or after ``ttl`` seconds (default GUEST_TTL)."""
        try:
            user = NewUser(uid=uid, name=name, avatar=avatar, session_id=session_id, ttl=ttl)
        except ValidationError as err:
            raise ServerError("bad-request", describe(err), status=422) from None
        token = new_auth_token()
        expires_at = None
        if user.session_id is not None:
            expires_at = time.time() + (user.ttl or GUEST_TTL)
        await self.store.add_user(
            User(user.uid, user.name, user.avatar, user.session_id, expires_at), token
        )
        return token

    async def approve_join(self, request_id: int) -> JoinRequest:
        """The operator lets a kit that asked in become a user; its poll gets the token."""
        filed = self.joins.decided(request_id)
        filed.auth_token = await self.create_user(filed.uid, filed.name)
        filed.status = "approved"
        log.info("join request %d approved: %s (%s) is a user now", filed.id, filed.name, filed.uid)
        return filed

    def reject_join(self, request_id: int) -> JoinRequest:
        filed = self.joins.decided(request_id)
        filed.status = "rejected"
        log.info("join request %d rejected: %s (%s)", filed.id, filed.name, filed.uid)
        return filed

    async def rotate_auth_token(self, uid: str) -> str:
        """A new auth token for ``uid``; the old one stops working, and connections that
        signed in with it are closed."""
        token = new_auth_token()
        if not await self.store.set_auth_token(uid, token):
            raise UnknownUser(uid)
        self._disconnect(uid, "token-reset", "this user's auth token was replaced")
        return token

    async def remove_user(self, uid: str) -> None:
        """Deletes ``uid`` (its calls stay in the log) and closes its connections."""
        if not await self.store.remove_user(uid):
            raise UnknownUser(uid)
        self._disconnect(uid, "user-removed", "this user was removed from the session server")
        self.connections.forget(uid)
        log.info("removed user %s", uid)

    def _disconnect(self, uid: str, code: str, message: str) -> None:
        for connection in self.connections.of(uid):
            self.connections.remove(connection)
            connection.close_after(
                Error(code=code, message=message), WSCloseCode.POLICY_VIOLATION, code.encode()
            )

    def _session_over(self, session_id: str, ended_at: float) -> None:
        self._drop_guests(session_id)
        self.tokens.session_ended(session_id, ended_at)
        self.store.record_session_end(session_id, ended_at)
        self.ringing.session_over(session_id, ended_at)
        if self.janus is not None:
            self.janus.session_over(session_id)

    def _drop_guests(self, session_id: str | None) -> None:
        """The guests of a session that ended (and any expired) lose their credentials
        and their connections."""
        self._background.spawn(self._remove_guests(session_id), f"remove guests of {session_id}")

    async def _remove_guests(self, session_id: str | None) -> None:
        try:
            uids = await self.store.remove_guests(session_id=session_id, now=time.time())
        except (RuntimeError, sqlite3.Error) as err:
            log.warning("could not remove the guests of %s: %s", session_id, err)
            return
        for uid in uids:
            for connection in self.connections.of(uid):
                self.connections.remove(connection)
                connection.close_after(
                    Error(code="guest-expired", message="the session you were invited to ended"),
                    WSCloseCode.POLICY_VIOLATION,
                    b"guest expired",
                )
            self.connections.forget(uid)
        if uids:
            log.info("removed %d guests (session %s over or expired)", len(uids), session_id)

    def _member_left(self, session_id: str, uid: str) -> None:
        if self.janus is not None:
            self.janus.member_left(session_id, uid)

    async def _generated_admin_key(self) -> str:
        """Generated once and kept in the database; also written to ``admin.key`` beside it
        (mode 0600) so ``callbox users add`` on this machine can use it."""
        key = await self.store.meta("admin_key", new_auth_token)
        if (database := self.store.path) is not None:
            await asyncio.to_thread(_write_admin_key, database.parent / ADMIN_KEY_FILE, key)
        return key


def _write_admin_key(path: Path, key: str) -> None:
    try:
        if path.read_text().strip() == key:
            return
    except FileNotFoundError:
        pass
    atomic_write_text(path, key + "\n", mode=0o600)


def _reachable_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"  # bound to every interface: loopback is one of them
    return f"[{host}]" if ":" in host else host
