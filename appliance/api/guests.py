"""Browser guests: invites, the code-for-tokens exchange, and the signaling proxy.

A person joins with a link (``/join/<code>``), not with the API token. The code buys a
guest user on the session server and a call token for the invited session: the same
credentials a kit uses, so the browser speaks the kits' signaling protocol unchanged.

A guest is bound to the invited session: the session server lets it join that session
and nothing else (no user list, no call log, no ringing, no tokens for other sessions), and
its auth token ends when that session ends, or after ``GUEST_PASS_SECONDS``.

The browser reaches the session server through ``/api/v1/signaling`` on this origin: one
port to open, the page needs no second address, and it works when the session server
listens on loopback while the API listens on the LAN. The proxy lets only guests made here
through (the first frame must be their ``hello``) and checks every later frame too: only
what a call needs (join of the invited session, leave, signal, state, switch-to-video,
ping) goes on; anything else is answered with an error and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, body_of
from appliance.calls import CallsError, SessionState
from appliance.errors import CallboxError, is_storage_full, storage_error
from appliance.jsonwire import send_json
from appliance.server.errors import ServerError
from appliance.signaling.client import ServerApi, SignalingError
from appliance.signaling.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

HEARTBEAT = 15.0
GUEST_PASS_SECONDS = 4 * 3600  # a guest's auth token lasts this long at most
# What a guest's browser may send through the proxy after its hello.
GUEST_MESSAGES = frozenset({"join", "leave", "signal", "state", "switch-to-video", "ping"})
SIGNALING_PATH = "/api/v1/signaling"


@dataclass
class _Invite:
    session_id: str
    expires_at: float
    uses_left: int


@dataclass
class _Guest:
    session_id: str
    expires_at: float


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class GuestsApi:
    def __init__(self, context: ApiContext, closing: asyncio.Event) -> None:
        self._ctx = context
        self._closing = closing
        self._invites: dict[str, _Invite] = {}  # by the code's hash
        self._guests: dict[str, _Guest] = {}  # by the guest's auth token hash
        self._server_api = ServerApi(context.server_url, trust=context.server_trust)
        self._sockets: set[web.WebSocketResponse] = set()
        self._http: aiohttp.ClientSession | None = None

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                "/api/v1/invites",
                self.create_invite,
                "Invite a person to join from a browser",
                "guests",
                body=m.CreateInvite,
                reply=m.Invite,
                status=201,
                errors={409: "No session to invite to, or guests are not possible"},
            ),
            Endpoint(
                "POST",
                "/api/v1/join",
                self.redeem,
                "Exchange an invite code for a guest's tokens (no bearer token)",
                "guests",
                body=m.Redeem,
                reply=m.GuestPass,
                auth=False,
                errors={
                    404: "Unknown, used up or expired invite",
                    409: "The session server refused",
                    503: "The session server cannot be reached",
                },
            ),
            Endpoint(
                "GET",
                SIGNALING_PATH,
                self.signaling,
                "The session server's signaling WebSocket, for guests",
                "guests",
                auth=False,
                websocket=True,
                description="The first frame must be a hello with a guest's auth token.",
            ),
        ]

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in list(self._sockets)), return_exceptions=True)
        await self._server_api.close()
        if self._http is not None:
            await self._http.close()

    # --- invites -------------------------------------------------------------------------

    async def create_invite(self, request: web.Request) -> m.Invite:
        body = body_of(request, m.CreateInvite)
        ctx = self._ctx
        session_id = body.session_id
        if session_id is None:
            # The kit's call, or (a meeting link made before the call) a new session that
            # the kit starts when the link is first opened.
            session = ctx.calls.call_snapshot()
            new_id = f"meet-{secrets.token_hex(6)}"
            session_id = session.session_id if session is not None else new_id
        if ctx.session_server is None and not ctx.config.server.admin_key:
            raise CallsError(
                "guests-unavailable",
                "guests need the session server's admin key: set [server] admin_key",
            )
        self._prune()
        code = secrets.token_urlsafe(24)
        invite = _Invite(session_id, time.time() + body.ttl, body.uses)
        self._invites[_digest(code)] = invite
        return m.Invite(
            code=code,
            url=f"/join/{code}",
            session_id=session_id,
            expires_at=invite.expires_at,
            uses_left=invite.uses_left,
        )

    async def redeem(self, request: web.Request) -> m.GuestPass:
        body = body_of(request, m.Redeem)
        self._prune()
        key = _digest(body.code)
        invite = self._invites.get(key)
        if invite is None:
            raise ApiError(
                "invite-invalid", "this invite is unknown, used up or expired", status=404
            )
        invite.uses_left -= 1  # at once: two browsers racing for the last use get one
        if invite.uses_left <= 0:
            del self._invites[key]
        uid = f"guest-{secrets.token_hex(4)}"
        try:
            auth_token = await self._create_user(uid, body.name, invite.session_id)
            call_token = await self._server_api.create_token(auth_token, invite.session_id)
        except (SignalingError, ServerError, CallboxError, OSError, sqlite3.Error) as err:
            invite.uses_left += 1  # the use was not spent: the link still works
            self._invites[key] = invite
            if is_storage_full(err) or (
                isinstance(err, SignalingError | ServerError) and err.code == "storage-full"
            ):
                raise storage_error(OSError(errno.ENOSPC, "no space left")) from None
            if isinstance(err, sqlite3.Error):
                raise storage_error(err) from None
            if isinstance(err, SignalingError):
                raise
            if isinstance(err, ServerError):
                raise CallsError(err.code, err.message) from None
            if isinstance(err, OSError):
                raise ApiError(
                    "server-unreachable", f"the session server: {err}", status=503
                ) from None
            raise
        self._guests[_digest(auth_token)] = _Guest(
            invite.session_id, time.time() + GUEST_PASS_SECONDS
        )
        log.info("guest %s (%s) joins session %s", uid, body.name, invite.session_id)
        await self._kit_joins(invite.session_id)
        config = self._ctx.config
        return m.GuestPass(
            uid=uid,
            name=body.name,
            auth_token=auth_token,
            call_token=call_token.token,
            session_id=invite.session_id,
            kit=m.KitInfo(uid=config.kit.uid, name=config.kit.name),
            signaling=SIGNALING_PATH,
        )

    async def _kit_joins(self, session_id: str) -> None:
        """A link opened while the kit is idle starts (or rejoins) its session on the kit,
        so the guest finds the kit there; a kit in another call stays in that call."""
        calls = self._ctx.calls
        if calls.session is not None or calls.state != SessionState.IDLE:
            return
        try:
            await self._ctx.kit.start_session(session_id)
        except CallsError as err:
            if err.code != "session-active":  # a second guest raced us to it: fine
                log.warning("the kit could not join session %s for a guest: %s", session_id, err)

    async def _create_user(self, uid: str, name: str, session_id: str) -> str:
        """A guest on the session server, bound to ``session_id``."""
        server = self._ctx.session_server
        if server is not None:
            return await server.create_user(
                uid, name, session_id=session_id, ttl=GUEST_PASS_SECONDS
            )
        admin_key = self._ctx.config.server.admin_key
        if admin_key is None:
            raise CallsError("guests-unavailable", "no admin key for the session server")
        return await self._server_api.add_user(
            admin_key, uid, name, session_id=session_id, ttl=GUEST_PASS_SECONDS
        )

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, v in self._invites.items() if v.expires_at <= now]:
            del self._invites[key]
        for key in [k for k, guest in self._guests.items() if guest.expires_at <= now]:
            del self._guests[key]

    def guest(self, auth_token: str) -> _Guest | None:
        """The guest made here with this auth token, while it lasts."""
        guest = self._guests.get(_digest(auth_token))
        return guest if guest is not None and guest.expires_at > time.time() else None

    def is_guest(self, auth_token: str) -> bool:
        return self.guest(auth_token) is not None

    # --- the signaling proxy -------------------------------------------------------------

    async def signaling(self, request: web.Request) -> web.StreamResponse:
        browser = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT)
        if not browser.can_prepare(request).ok:
            raise ApiError("not-websocket", "expected a WebSocket upgrade")
        await browser.prepare(request)
        self._sockets.add(browser)
        try:
            greeting = await self._hello(browser)
            if greeting is not None:
                await self._relay(browser, *greeting)
        finally:
            self._sockets.discard(browser)
            await browser.close()
        return browser

    async def _hello(self, browser: web.WebSocketResponse) -> tuple[str, _Guest] | None:
        """The browser's first frame and its guest, if it is a hello from a guest made here."""
        with contextlib.suppress(TimeoutError):
            frame = await browser.receive(timeout=self._ctx.config.api.limits.hello_timeout)
            if frame.type == WSMsgType.TEXT:
                try:
                    hello = json.loads(frame.data)
                except ValueError:
                    hello = None
                if not isinstance(hello, dict):
                    hello = {}
                token = hello.get("auth_token")
                guest = self.guest(token) if isinstance(token, str) else None
                if hello.get("type") == "hello" and guest is not None:
                    return str(frame.data), guest
                request_id = hello.get("id")
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await send_json(
                        browser,
                        {
                            "type": "error",
                            "id": request_id if isinstance(request_id, int) else None,
                            "code": "unauthorized",
                            "message": "this proxy is for guests: say hello with a guest token",
                        },
                    )
        await browser.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthorized")
        return None

    async def _relay(self, browser: web.WebSocketResponse, hello: str, guest: _Guest) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        url = self._ctx.server_url.rstrip("/").replace("http", "ws", 1) + "/v1/ws"
        try:
            server = await self._http.ws_connect(
                url, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT, ssl=self._ctx.server_trust
            )
        except (aiohttp.ClientError, OSError) as err:
            log.warning("signaling proxy: cannot reach %s: %s", url, err)
            await browser.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server unreachable")
            return
        try:
            await server.send_str(hello)
            upstream = asyncio.create_task(_forward(browser, server, guest))
            downstream = asyncio.create_task(_forward(server, browser))
            stop = asyncio.create_task(self._closing.wait())
            await asyncio.wait({upstream, downstream, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (upstream, downstream, stop):
                task.cancel()
            await asyncio.gather(upstream, downstream, stop, return_exceptions=True)
        finally:
            await server.close()


async def _forward(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    guest: _Guest | None = None,
) -> None:
    """Relays text frames; from a guest's browser (``guest``), only what a call in its
    session needs: anything else is answered with an error at the browser and dropped."""
    async for frame in source:
        if frame.type != WSMsgType.TEXT:
            return  # the protocol is JSON text; anything else ends the relay
        if guest is not None:
            refusal = _guest_refusal(frame.data, guest)
            if refusal is not None:
                await send_json(source, refusal)
                continue
        await target.send_str(frame.data)


def _guest_refusal(text: str, guest: _Guest) -> dict[str, object] | None:
    """Why a guest's frame may not pass (as the protocol's error), or None if it may."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        message = None
    if not isinstance(message, dict):
        return _refusal(None, "bad-message", "expected a JSON object")
    request_id = message.get("id")
    kind = message.get("type")
    if kind not in GUEST_MESSAGES:
        return _refusal(request_id, "guest-forbidden", f"a guest may not send {kind!r}")
    if kind == "join" and message.get("session_id") != guest.session_id:
        return _refusal(
            request_id, "guest-forbidden", "a guest may only join the session it was invited to"
        )
    return None


def _refusal(request_id: object, code: str, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "id": request_id if isinstance(request_id, int) else None,
        "code": code,
        "message": message,
    }
