"""The kit's side of the session server: the signaling WebSocket and the HTTP API.

``SignalingClient`` keeps two tasks per connection. The reader resolves replies the moment
they arrive and queues everything else; the dispatcher hands queued events to the handlers
one at a time, in order. A handler may therefore ``await client.request(...)`` itself:
its reply is resolved by the reader while the dispatcher waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from appliance.errors import CallsError
from appliance.signaling.messages import (
    MAX_MESSAGE_BYTES,
    CallInfo,
    Error,
    Hello,
    Reply,
    Request,
    ServerMessage,
    Welcome,
    dump,
    server_message,
)
from appliance.signaling.tokens import CallToken
from appliance.tls import ClientTrust

log = logging.getLogger(__name__)

EventHandler = Callable[[ServerMessage], Awaitable[None] | None]
CloseHandler = Callable[[], Awaitable[None] | None]
M = TypeVar("M", bound=BaseModel)

HEARTBEAT = 15.0  # WebSocket pings, so a vanished server is noticed within ~30 s
HTTP_TIMEOUT = 10.0


class SignalingError(CallsError):
    """The server refused: ``code`` is stable (``token-expired``, ``unauthorized``, ...),
    ``message`` is for people. A ``CallsError`` (409), so a refusal reaches the call API's
    callers and the REST API as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.args = (f"{code}: {message}",)


@dataclass(frozen=True)
class _Closed:
    """Queued after the last event of a connection; ``unexpected`` unless close() did it."""

    unexpected: bool


class SignalingClient:
    def __init__(
        self,
        url: str,
        auth_token: str,
        *,
        client_name: str = "callbox",
        trust: ClientTrust = True,
        uid: str | None = None,
    ) -> None:
        self._uid = uid  # who this client is: the server refuses a token of another user
        self._ws_url = _websocket_url(url)
        self._trust = trust  # how a wss:// server is checked (appliance.tls.client_trust)
        self._auth_token = auth_token
        self._client_name = client_name
        self._event_handlers: list[EventHandler] = []
        self._close_handlers: list[CloseHandler] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._welcomed = False
        self._closing = False

    def on_event(self, handler: EventHandler) -> None:
        """Every unsolicited server message, and errors that answer no pending request."""
        self._event_handlers.append(handler)

    def on_close(self, handler: CloseHandler) -> None:
        """The connection was lost (not after close()): a good moment to reconnect."""
        self._close_handlers.append(handler)

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and self._welcomed

    async def connect(self, timeout: float = 10) -> Welcome:
        """Opens the WebSocket and says hello. May be called again after the connection was
        lost or closed; handlers stay registered. Events the server sends right after the
        welcome (a call still ringing for us) go to the handlers registered by then."""
        if self.connected:
            raise RuntimeError("already connected")
        await self._shutdown()
        self._closing = False
        try:
            async with asyncio.timeout(timeout):
                self._http = aiohttp.ClientSession()
                ws = await self._http.ws_connect(
                    self._ws_url,
                    max_msg_size=MAX_MESSAGE_BYTES,
                    heartbeat=HEARTBEAT,
                    ssl=self._trust,
                )
                self._ws = ws
                events: asyncio.Queue[ServerMessage | _Closed] = asyncio.Queue()
                self._reader = asyncio.create_task(self._read(ws, events), name="signaling-reader")
                self._dispatcher = asyncio.create_task(
                    self._dispatch(events), name="signaling-dispatcher"
                )
                hello = Hello(
                    type="hello",
                    auth_token=self._auth_token,
                    client=self._client_name,
                    uid=self._uid,
                )
                welcome = await self._exchange(ws, hello)
        except BaseException:
            self._closing = True
            await self._shutdown()
            raise
        if not isinstance(welcome, Welcome):
            await self.close()
            raise SignalingError("bad-response", f"expected welcome, got {welcome!r}")
        if self._uid is not None and welcome.uid != self._uid:  # a server that did not check
            await self.close()
            raise SignalingError(
                "uid-mismatch",
                f"this auth token belongs to user {welcome.uid!r}, not {self._uid!r}",
            )
        self._welcomed = True
        return welcome

    async def request(self, message: Request, timeout: float = 10) -> Reply:
        """Sends ``message`` with a fresh id and returns the server's reply. Raises
        SignalingError when the reply is an error, ConnectionError when the connection
        closes first, TimeoutError after ``timeout`` seconds."""
        ws = self._ws
        if ws is None or not self.connected:
            raise ConnectionError("not connected to the session server")
        return await asyncio.wait_for(self._exchange(ws, message), timeout)

    async def send(self, message: Request) -> None:
        """Sends ``message`` without an id: no reply on success; an error reaches on_event."""
        ws = self._ws
        if ws is None or not self.connected:
            raise ConnectionError("not connected to the session server")
        await _send(ws, message.model_copy(update={"id": None}))

    async def close(self) -> None:
        self._closing = True
        await self._shutdown()

    # --- internals -----------------------------------------------------------------------

    async def _exchange(self, ws: aiohttp.ClientWebSocketResponse, message: Request) -> Reply:
        request_id = next(self._ids)
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            await _send(ws, message.model_copy(update={"id": request_id}))
            return await reply
        finally:
            self._pending.pop(request_id, None)

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, events: asyncio.Queue[ServerMessage | _Closed]
    ) -> None:
        try:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._route(frame.data, events)
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    log.warning("signaling connection failed: %s", ws.exception())
                    break
        finally:
            for pending in self._pending.values():
                if not pending.done():
                    pending.set_exception(ConnectionError("the signaling connection closed"))
            unexpected = self._welcomed and not self._closing
            self._welcomed = False
            events.put_nowait(_Closed(unexpected))

    def _route(self, text: str, events: asyncio.Queue[ServerMessage | _Closed]) -> None:
        try:
            message = server_message.validate_json(text)
        except ValidationError as err:
            log.warning("ignoring a server message that does not parse: %s", err)
            return
        if isinstance(message, Reply) and message.id is not None:
            pending = self._pending.get(message.id)
            if pending is not None:
                if not pending.done():
                    if isinstance(message, Error):
                        pending.set_exception(SignalingError(message.code, message.message))
                    else:
                        pending.set_result(message)
                return
            if not isinstance(message, Error):
                log.debug("dropping a reply to a request nobody waits for: %s", message.type)
                return
        events.put_nowait(message)

    async def _dispatch(self, events: asyncio.Queue[ServerMessage | _Closed]) -> None:
        while True:
            item = await events.get()
            if isinstance(item, _Closed):
                if item.unexpected:
                    for on_close in list(self._close_handlers):
                        await _run_handler(on_close)
                return
            for on_event in list(self._event_handlers):
                await _run_handler(on_event, item)

    async def _shutdown(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader
        dispatcher, self._dispatcher = self._dispatcher, None
        # From inside a handler the dispatcher is the caller: it finishes by itself.
        if dispatcher is not None and dispatcher is not asyncio.current_task():
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        self._welcomed = False


async def _send(ws: aiohttp.ClientWebSocketResponse, message: Request) -> None:
    try:
        await ws.send_str(dump(message))
    except RuntimeError as err:  # aiohttp's "closing" on some paths
        raise ConnectionError(str(err)) from err


async def _run_handler(handler: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    try:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("signaling event handler failed")


def _websocket_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/v1/ws"
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://") + "/v1/ws"
    raise ValueError(f"url: expected http(s)://host:port, got {url!r}")


# --- the HTTP side ---------------------------------------------------------------------


class _TokenResponse(BaseModel):
    token: str
    session_id: str
    uid: str
    expires_at: float


class _NewUserResponse(BaseModel):
    uid: str
    auth_token: str


class _UsersResponse(BaseModel):
    users: list[dict[str, Any]]


class _CallsResponse(BaseModel):
    calls: list[CallInfo]


class ServerApi:
    """Refusals raise SignalingError (code and message from the error body); an unreachable
    server raises ConnectionError, a slow one TimeoutError."""

    def __init__(self, url: str, *, trust: ClientTrust = True) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected http(s)://host:port, got {url!r}")
        self._base = url.rstrip("/")
        self._trust = trust
        self._http: aiohttp.ClientSession | None = None

    async def create_token(self, auth_token: str, session_id: str) -> CallToken:
        data = await self._call("POST", "/v1/tokens", auth_token, body={"session_id": session_id})
        issued = _parse(_TokenResponse, data)
        return CallToken(issued.token, issued.session_id, issued.uid, issued.expires_at)

    async def add_user(
        self,
        admin_key: str,
        uid: str,
        name: str,
        avatar: str | None = None,
        *,
        session_id: str | None = None,
        ttl: float | None = None,
    ) -> str:
        """Creates a user (with ``session_id``, a guest bound to that session, whose token
        ends with it or after ``ttl`` seconds) and returns its auth token."""
        body: dict[str, Any] = {"uid": uid, "name": name}
        if avatar is not None:
            body["avatar"] = avatar
        if session_id is not None:
            body["session_id"] = session_id
        if ttl is not None:
            body["ttl"] = ttl
        data = await self._call("POST", "/v1/users", admin_key, body=body)
        return _parse(_NewUserResponse, data).auth_token

    async def remove_user(self, admin_key: str, uid: str) -> None:
        await self._call("DELETE", f"/v1/admin/users/{_path_part(uid)}", admin_key)

    async def reset_token(self, admin_key: str, uid: str) -> str:
        """A new auth token for ``uid``; the old one stops working."""
        data = await self._call("POST", f"/v1/admin/users/{_path_part(uid)}/token", admin_key)
        return _parse(_NewUserResponse, data).auth_token

    async def admin_users(self, admin_key: str) -> list[dict[str, Any]]:
        """Every user but guests, with ``online``, for the admin key."""
        return _parse(_UsersResponse, await self._call("GET", "/v1/admin/users", admin_key)).users

    async def users(self, auth_token: str) -> list[dict[str, Any]]:
        return _parse(_UsersResponse, await self._call("GET", "/v1/users", auth_token)).users

    async def calls(self, auth_token: str, limit: int = 50) -> list[CallInfo]:
        data = await self._call("GET", "/v1/calls", auth_token, query={"limit": str(limit)})
        return _parse(_CallsResponse, data).calls

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _call(
        self,
        method: str,
        path: str,
        bearer: str,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        headers = {"Authorization": f"Bearer {bearer}"}
        try:
            async with self._http.request(
                method, self._base + path, headers=headers, json=body, params=query, ssl=self._trust
            ) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientConnectionError as err:
            raise ConnectionError(f"session server at {self._base}: {err}") from err
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if status >= 400:
            raise _refusal(status, data, text)
        if data is None:
            raise SignalingError("bad-response", f"{method} {path}: the answer is not JSON")
        return data


def _path_part(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _refusal(status: int, data: Any, text: str) -> SignalingError:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return SignalingError(error["code"], str(error.get("message", "")))
    return SignalingError(f"http-{status}", text[:200] or f"HTTP {status}")


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SignalingError("bad-response", f"unexpected answer: {err}") from None
