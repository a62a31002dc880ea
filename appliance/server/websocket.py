"""``GET /v1/ws``: greeting, reading frames, and answering each request.

Frames larger than ``MAX_MESSAGE_BYTES`` never reach the parser: aiohttp closes such a
connection with 1009 (message too big). Everything else a client can send gets an answer
on the same connection, which stays open; no input can disturb another connection. The
limits of ``[server.limits]`` (``appliance.server.limits``) bound what one client may ask:
frames per second, connections and sessions per user, sockets on the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter

from aiohttp import WSCloseCode, WSMsgType, web

from appliance.config import ServerLimits
from appliance.server.connection import Connection, ConnectionRegistry
from appliance.server.errors import BadMessage, ServerError, UnknownUser
from appliance.server.janus.rooms import JanusRooms
from appliance.server.limits import RateLimit, SignInSlots
from appliance.server.ringing import Ringing
from appliance.server.rooms import Rooms
from appliance.server.store import Store, User
from appliance.server.wire import MalformedFrame, parse_frame, request_id
from appliance.signaling.messages import (
    MAX_MESSAGE_BYTES,
    Ack,
    CallAction,
    CallEventMessage,
    CallInitiate,
    CallReply,
    ClientMessage,
    Error,
    Hello,
    Join,
    Leave,
    Ping,
    Pong,
    Reply,
    SignalOut,
    SwitchToVideo,
    UpdateState,
    Welcome,
    dump,
)

log = logging.getLogger(__name__)

HEARTBEAT = 15.0  # WebSocket pings; a kit that lost power is noticed within ~2 of these
CLOSE_TIMEOUT = 3.0  # how long closing waits for the client's close frame


class SignalingEndpoint:
    def __init__(
        self,
        *,
        store: Store,
        connections: ConnectionRegistry,
        rooms: Rooms,
        ringing: Ringing,
        janus: JanusRooms | None = None,
        limits: ServerLimits | None = None,
        reconnect_grace: float = 0.0,
    ) -> None:
        self._store = store
        # A receiver gone less than this ago may be reconnecting: its call rings for it.
        self._reconnect_grace = reconnect_grace
        self._connections = connections
        self._rooms = rooms
        self._ringing = ringing
        self._janus = janus  # sessions' media on Janus VideoRooms; None: mesh
        self._sockets: set[web.WebSocketResponse] = set()
        self._limits = limits or ServerLimits()
        self._slots = SignInSlots(self._limits)  # sockets that have not said hello yet
        # Signaling connections refused, by why: "busy" (sign-in slots or connections full),
        # "not-signed-in" (no valid hello). For GET /metrics.
        self.refused: Counter[str] = Counter()

    async def close_all(self) -> None:
        sockets = list(self._sockets)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping") for ws in sockets),
            return_exceptions=True,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT, timeout=CLOSE_TIMEOUT
        )
        if not ws.can_prepare(request).ok:
            raise ServerError("bad-request", "expected a WebSocket upgrade")
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            address = request.remote or "unknown"
            refusal = self._slots.take(address)
            if refusal is not None:
                self.refused["busy"] += 1
                await _turn_away(ws, refusal)
                return ws
            try:
                greeting = await self._greet(ws)
            finally:
                self._slots.give_back(address)
            if greeting is None:
                self.refused["not-signed-in"] += 1
            else:
                self._slots.signed_in(address)
                user, hello_id = greeting
                if len(self._connections) >= self._limits.connections:
                    self.refused["busy"] += 1
                    await _turn_away(ws, "the session server is full; try again later", hello_id)
                    return ws
                await self._serve(ws, user, hello_id)
        finally:
            self._sockets.discard(ws)
            await ws.close()
        return ws

    async def _greet(self, ws: web.WebSocketResponse) -> tuple[User, int | None] | None:
        try:
            frame = await ws.receive(timeout=self._limits.hello_timeout)
        except TimeoutError:
            await _refuse(ws, None, "no hello received in time")
            return None
        if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if frame.type != WSMsgType.TEXT:
            await _refuse(ws, None, "the first message must be a hello text frame")
            return None
        try:
            hello = parse_frame(frame.data)
        except MalformedFrame as err:
            await _refuse(ws, err.request_id, f"the first message must be hello ({err.message})")
            return None
        if not isinstance(hello, Hello):
            await _refuse(ws, hello.id, "the first message must be hello")
            return None
        user = await self._store.user_by_token(hello.auth_token)
        if user is None:
            await _refuse(ws, hello.id, "unknown auth token")
            return None
        if hello.uid is not None and hello.uid != user.uid:
            await _refuse(
                ws,
                hello.id,
                f"this auth token belongs to user {user.uid!r}, not {hello.uid!r}: "
                f"use {hello.uid!r}'s own token (callbox users add/reset-token {hello.uid})",
                code="uid-mismatch",
            )
            return None
        return user, hello.id

    async def _serve(self, ws: web.WebSocketResponse, user: User, hello_id: int | None) -> None:
        self._make_room_for(user)
        connection = self._connections.add(ws, user)
        connection.start()
        rate = RateLimit(self._limits)
        try:
            connection.send(Welcome(id=hello_id, uid=user.uid, name=user.name))
            for call in self._ringing.ringing_for(user.uid):
                connection.send(CallEventMessage(type="call-incoming", call=call))
            async for frame in ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break  # ERROR: aiohttp has closed the socket (e.g. 1009, too big)
                if not rate.admit():
                    if self._refuse_excess(connection, rate, frame.data):
                        await connection.closed()
                        break
                elif frame.type == WSMsgType.TEXT:
                    await self._answer(connection, frame.data)
                else:
                    connection.send(_bad("body: binary frames are not accepted; send JSON text"))
        finally:
            self._connections.remove(connection)
            self._rooms.connection_lost(connection)
            await connection.stop()

    def _make_room_for(self, user: User) -> None:
        """A user at its connection limit loses its oldest connection: the newest is the
        one most likely alive (a kit that lost Wi-Fi reconnects before the server notices)."""
        existing = self._connections.of(user.uid)
        for oldest in existing[: max(0, len(existing) - self._limits.connections_per_user + 1)]:
            log.warning("%r: closed, %s has too many connections", oldest, user.uid)
            self._connections.remove(oldest)
            oldest.close_after(
                Error(
                    code="too-many-connections",
                    message=f"closed: more than {self._limits.connections_per_user} "
                    "connections of this user",
                ),
                WSCloseCode.POLICY_VIOLATION,
                b"too many connections",
            )

    def _refuse_excess(self, connection: Connection, rate: RateLimit, data: object) -> bool:
        """Answers a frame over the rate limit; True when the connection is to be closed."""
        request = _cheap_request_id(data)
        limit = self._limits.messages_per_second
        if rate.abusive:
            log.warning("%r: closed, over the rate limit (%d refused)", connection, rate.refused)
            connection.close_after(
                Error(id=request, code="rate-limited", message="closed: too many messages"),
                WSCloseCode.POLICY_VIOLATION,
                b"rate limited",
            )
            return True
        connection.send(
            Error(
                id=request,
                code="rate-limited",
                message=f"too many messages: at most {limit:g} a second; this one was dropped",
            )
        )
        return False

    async def _answer(self, connection: Connection, text: str) -> None:
        arrived = asyncio.get_running_loop().time()
        try:
            request = parse_frame(text)
        except MalformedFrame as err:
            connection.send(Error(id=err.request_id, code=err.code, message=err.message))
            return
        try:
            reply = await self._dispatch(connection, request, arrived)
        except ServerError as err:
            connection.send(Error(id=request.id, code=err.code, message=err.message))
            return
        except Exception:
            log.exception("request %s from %r failed", request.type, connection)
            connection.send(Error(id=request.id, code="internal", message="internal error"))
            return
        if request.id is not None:  # without an id, success is silent
            connection.send((reply or Ack()).model_copy(update={"id": request.id}))

    async def _dispatch(
        self, connection: Connection, request: ClientMessage, arrived: float | None = None
    ) -> Reply | None:
        guest = connection.user.session_id
        if guest is not None and isinstance(request, CallInitiate | CallAction):
            raise ServerError("guest-forbidden", "a guest may not ring anyone or answer calls")
        match request:
            case Join():
                if guest is not None and request.session_id != guest:
                    raise ServerError(
                        "guest-forbidden", "a guest may only join the session it was invited to"
                    )
                self._check_sessions(connection, request.session_id)
                if self._janus is not None:
                    return await self._janus.join(connection, request)
                return self._rooms.join(connection, request)
            case Leave():
                self._rooms.leave(connection)
            case SignalOut():
                self._rooms.relay(connection, request, arrived)
            case UpdateState():
                self._rooms.update_state(connection, request.state)
            case SwitchToVideo():
                self._rooms.switch_to_video(connection)
            case CallInitiate():
                if request.receiver == connection.uid:
                    raise BadMessage("receiver: you cannot call yourself")
                receiver = await self._store.user(request.receiver)
                if receiver is None:
                    raise UnknownUser(request.receiver)
                if not self._connections.reachable(receiver.uid, self._reconnect_grace):
                    raise ServerError(
                        "receiver-offline",
                        f"{receiver.name} ({receiver.uid}) is offline: it is not connected "
                        "to the session server",
                    )
                call = self._ringing.initiate(connection.user, receiver, request.call_type)
                return CallReply(call=call)
            case CallAction():
                call = await self._ringing.act(connection, request.type, request.session_id)
                return CallReply(call=call)
            case Ping():
                return Pong()
            case Hello():
                raise BadMessage("type: hello is only valid as the first message")
        return None

    def _check_sessions(self, connection: Connection, session_id: str) -> None:
        elsewhere = {
            session.id
            for other in self._connections.of(connection.uid)
            if other is not connection and (session := self._rooms.session_of(other)) is not None
        } - {session_id}
        if len(elsewhere) >= self._limits.sessions_per_user:
            raise ServerError(
                "too-many-sessions",
                f"{connection.uid} already takes part in {len(elsewhere)} sessions "
                f"(at most {self._limits.sessions_per_user})",
            )


def _cheap_request_id(data: object) -> int | None:
    """The ``id`` of a refused frame, so a waiting request fails at once."""
    if not isinstance(data, str):
        return None
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return request_id(parsed) if isinstance(parsed, dict) else None


def _bad(message: str) -> Error:
    return Error(code="bad-message", message=message)


async def _turn_away(ws: web.WebSocketResponse, message: str, request: int | None = None) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(dump(Error(id=request, code="server-busy", message=message)))
    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server busy")


async def _refuse(
    ws: web.WebSocketResponse,
    request_id: int | None,
    message: str,
    code: str = "unauthorized",
) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):  # already gone: nothing to tell
        await ws.send_str(dump(Error(id=request_id, code=code, message=message)))
    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthorized")
