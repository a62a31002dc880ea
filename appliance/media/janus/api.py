"""Janus's JSON API over its WebSocket transport (subprotocol ``janus-protocol``), and its
HTTP admin API.

Every request carries a fresh ``transaction``; the reply with the same transaction resolves
it. A plugin ``message`` is first acknowledged (``ack``) and answered later by an ``event``
with the same transaction, unless the plugin answers at once (``success``). Everything else
Janus sends (events of a handle, ``webrtcup``, ``hangup``, a session ``timeout``) goes to the
handle or session it names. A session needs a keepalive at least every ``session_timeout``
(60 s by default); a connection that closes, a keepalive that fails and a session Janus
forgot all count as the media server lost: ``on_lost`` callbacks say so once.

The session server (room set-up) and the kits (publish and subscribe) both use this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

PROTOCOL = "janus-protocol"
REQUEST_TIMEOUT = 10.0
KEEPALIVE_EVERY = 25.0
HEARTBEAT = 10.0  # WebSocket pings: a Janus that vanished without closing is noticed
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # an offer for a big room's subscription is large
VIDEOROOM = "janus.plugin.videoroom"

Message = dict[str, Any]
EventCallback = Callable[[Message], None]
LostCallback = Callable[[str], None]


class JanusError(Exception):
    """Janus or one of its plugins refused a request; ``code`` is Janus's number."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusGone(JanusError):
    """The connection or the session is gone: Janus stopped, restarted or timed us out."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


# Janus's own error numbers that mean "the session is not there any more".
NO_SUCH_SESSION = 458
NO_SUCH_HANDLE = 459


@dataclass(frozen=True)
class PluginReply:
    """What a plugin answered: its ``data`` and, for negotiations, a ``jsep``."""

    data: Message
    jsep: Message | None


def plugin_reply(message: Message) -> PluginReply:
    """The plugin's part of a ``success`` or ``event``; a plugin error raises."""
    plugindata = message.get("plugindata") or {}
    data = plugindata.get("data") or {}
    if not isinstance(data, dict):
        raise JanusError(0, f"malformed plugin reply: {message!r:.200}")
    if "error_code" in data or "error" in data:
        raise JanusError(int(data.get("error_code", 0)), str(data.get("error", "plugin error")))
    jsep = message.get("jsep")
    return PluginReply(data, jsep if isinstance(jsep, dict) else None)


def _transaction() -> str:
    return secrets.token_hex(8)


class JanusConnection:
    """One WebSocket to Janus. Create with ``await JanusConnection.open(url)``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        api_secret: str | None,
    ) -> None:
        self._http = http
        self._ws = ws
        self.api_secret = api_secret
        self._pending: dict[str, tuple[asyncio.Future[Message], bool]] = {}
        self._sessions: dict[int, JanusSession] = {}
        self._lost_callbacks: list[LostCallback] = []
        self._lost: str | None = None
        self._reader = asyncio.create_task(self._read(), name="janus reader")

    @classmethod
    async def open(
        cls, url: str, *, api_secret: str | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> JanusConnection:
        http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(timeout):
                ws = await http.ws_connect(
                    url,
                    protocols=(PROTOCOL,),
                    heartbeat=HEARTBEAT,
                    max_msg_size=MAX_MESSAGE_BYTES,
                )
        except BaseException:
            await http.close()
            raise
        return cls(http, ws, api_secret)

    @property
    def lost(self) -> str | None:
        """Why the connection is unusable, or None while it works."""
        return self._lost

    def on_lost(self, callback: LostCallback) -> None:
        self._lost_callbacks.append(callback)

    async def request(self, message: Message, *, timeout: float = REQUEST_TIMEOUT) -> Message:
        """Sends ``message`` and returns Janus's final reply to it; a Janus error raises."""
        if self._lost is not None:
            raise JanusGone(self._lost)
        transaction = _transaction()
        body = {**message, "transaction": transaction}
        if self.api_secret is not None:
            body["apisecret"] = self.api_secret
        # For a plugin message the ack only says Janus got it; the answer is an event.
        ack_is_final = message.get("janus") != "message"
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (future, ack_is_final)
        try:
            await self._ws.send_str(json.dumps(body))
            async with asyncio.timeout(timeout):
                reply = await future
        except (ConnectionError, RuntimeError) as err:
            raise JanusGone(f"cannot send to Janus: {err}") from None
        except TimeoutError:
            raise JanusGone(f"Janus did not answer {message.get('janus')} in time") from None
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            error = reply.get("error") or {}
            code = int(error.get("code", 0))
            reason = str(error.get("reason", "unknown error"))
            if code == NO_SUCH_SESSION:
                self._lose(f"Janus forgot the session: {reason}")
            raise JanusError(code, reason)
        return reply

    async def create_session(self) -> JanusSession:
        reply = await self.request({"janus": "create"})
        session = JanusSession(self, int(reply["data"]["id"]))
        self._sessions[session.id] = session
        return session

    async def close(self) -> None:
        self._lose("closed")
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._http.close()

    # --- reading -------------------------------------------------------------------------

    async def _read(self) -> None:
        reason = "Janus closed the connection"
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    reason = f"Janus connection failed ({frame.type.name})"
                    break
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    log.warning("Janus sent something that is not JSON: %.200s", frame.data)
                    continue
                if isinstance(message, dict):
                    self._route(message)
        except Exception as err:  # the socket broke under us: same as a close
            reason = f"Janus connection failed: {err}"
        self._lose(reason)

    def _route(self, message: Message) -> None:
        transaction = message.get("transaction")
        pending = self._pending.get(transaction) if isinstance(transaction, str) else None
        if pending is not None:
            future, ack_is_final = pending
            if message.get("janus") != "ack" or ack_is_final:
                if not future.done():
                    future.set_result(message)
                return
            return  # the ack of a plugin message: its event follows
        session = self._sessions.get(message.get("session_id"))  # type: ignore[arg-type]
        if session is not None:
            session._event(message)

    def _lose(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(JanusGone(reason))
        for session in list(self._sessions.values()):
            session._lose(reason)
        if reason != "closed":
            for callback in self._lost_callbacks:
                callback(reason)

    def _forget(self, session: JanusSession) -> None:
        self._sessions.pop(session.id, None)


class JanusSession:
    """A Janus session: handles live in it; a keepalive task keeps it alive."""

    def __init__(self, connection: JanusConnection, session_id: int) -> None:
        self.connection = connection
        self.id = session_id
        self._handles: dict[int, JanusHandle] = {}
        self._lost_callbacks: list[LostCallback] = []
        self._lost: str | None = None
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"janus keepalive {self.id}")

    @property
    def lost(self) -> str | None:
        return self._lost

    def on_lost(self, callback: LostCallback) -> None:
        """The session is gone for good (Janus died, restarted or timed it out)."""
        self._lost_callbacks.append(callback)

    async def request(self, message: Message, *, timeout: float = REQUEST_TIMEOUT) -> Message:
        if self._lost is not None:
            raise JanusGone(self._lost)
        return await self.connection.request({**message, "session_id": self.id}, timeout=timeout)

    async def attach(self, plugin: str = VIDEOROOM) -> JanusHandle:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(reply["data"]["id"]))
        self._handles[handle.id] = handle
        return handle

    async def destroy(self) -> None:
        """Ends the session on Janus (its handles and their PeerConnections go with it)."""
        self._keepalive.cancel()
        if self._lost is None:
            with contextlib.suppress(JanusError):
                await self.request({"janus": "destroy"}, timeout=3.0)
        self._lose("closed")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_EVERY)
            try:
                await self.request({"janus": "keepalive"})
            except JanusError as err:
                self._lose(f"keepalive failed: {err}")
                return

    def _event(self, message: Message) -> None:
        if message.get("janus") == "timeout":
            self._lose("Janus timed the session out")
            return
        handle = self._handles.get(message.get("sender"))  # type: ignore[arg-type]
        if handle is not None:
            if message.get("janus") == "detached":
                self._handles.pop(handle.id, None)
            handle._event(message)

    def _lose(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self._keepalive.cancel()
        self.connection._forget(self)
        if reason != "closed":
            for callback in self._lost_callbacks:
                callback(reason)


class JanusHandle:
    """A plugin handle. Its unsolicited events go to ``on_event`` callbacks."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self._callbacks: list[EventCallback] = []

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    async def message(
        self, body: Message, jsep: Message | None = None, *, timeout: float = REQUEST_TIMEOUT
    ) -> PluginReply:
        """A plugin request; its answer (a plugin error raises ``JanusError``)."""
        request: Message = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return plugin_reply(await self.session.request(request, timeout=timeout))

    async def detach(self) -> None:
        with contextlib.suppress(JanusError):
            await self.session.request({"janus": "detach", "handle_id": self.id}, timeout=3.0)

    def _event(self, message: Message) -> None:
        for callback in self._callbacks:
            callback(message)


def jsep_of(description: Any) -> Message:
    """An aiortc RTCSessionDescription as Janus's ``jsep``: all our candidates are in the
    SDP already (aiortc gathers before it answers), so no trickling follows."""
    return {"type": description.type, "sdp": description.sdp, "trickle": False}


class JanusAdmin:
    """Janus's admin API over HTTP (``admin_http`` in ``janus.transport.http.jcfg``)."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url.rstrip("/")
        self._secret = secret

    async def request(
        self,
        request: str,
        *,
        session_id: int | None = None,
        handle_id: int | None = None,
        timeout: float = REQUEST_TIMEOUT,
        **fields: Any,
    ) -> Message:
        url = self.url
        if session_id is not None:
            url += f"/{session_id}"
            if handle_id is not None:
                url += f"/{handle_id}"
        body = {
            "janus": request,
            "transaction": _transaction(),
            "admin_secret": self._secret,
            **fields,
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
                http.post(url, json=body) as response,
            ):
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
            raise JanusGone(f"Janus admin API at {self.url}: {err}") from None
        if not isinstance(reply, dict):
            raise JanusError(0, f"malformed admin reply: {reply!r:.200}")
        if reply.get("janus") == "error":
            error = reply.get("error") or {}
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "unknown")))
        return reply

    async def sessions(self) -> list[int]:
        reply = await self.request("list_sessions")
        return [int(s) for s in reply.get("sessions", [])]

    async def handles(self, session_id: int) -> list[int]:
        reply = await self.request("list_handles", session_id=session_id)
        return [int(h) for h in reply.get("handles", [])]

    async def handle_info(self, session_id: int, handle_id: int) -> Message:
        reply = await self.request("handle_info", session_id=session_id, handle_id=handle_id)
        info = reply.get("info")
        return info if isinstance(info, dict) else {}
