"""The session server's HTTP side: users, call tokens, the call log, health.

Every error is ``{"error": {"code": ..., "message": ...}}`` with a 4xx status; request
bodies are validated with pydantic and a refusal names the field.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance import __version__
from appliance.httperrors import json_errors as shared_json_errors
from appliance.jsonwire import json_response
from appliance.server.connection import ConnectionRegistry
from appliance.server.errors import ServerError
from appliance.server.joins import JoinRequest, JoinRequestBody, JoinRequests
from appliance.server.metrics import ServerMetrics
from appliance.server.store import Store, User
from appliance.server.tokens import CallTokens
from appliance.signaling.messages import UID_PATTERN, SessionId, Uid
from appliance.validation import describe

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEFAULT_CALLS_LIMIT = 50
MAX_CALLS_LIMIT = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: Uid
    name: str = Field(min_length=1, max_length=64)
    avatar: str | None = Field(default=None, max_length=2048)
    # A guest: bound to this session; its token ends with the session or after ttl seconds.
    session_id: SessionId | None = None
    ttl: float | None = Field(default=None, ge=10, le=7 * 24 * 3600)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


json_errors = shared_json_errors(log, storage_full="the server's storage is full")


class Server(Protocol):
    """What the HTTP endpoints use of the session server (``appliance.server.app``)."""

    @property
    def admin_key(self) -> str: ...
    @property
    def store(self) -> Store: ...
    @property
    def tokens(self) -> CallTokens: ...
    @property
    def connections(self) -> ConnectionRegistry: ...
    @property
    def joins(self) -> JoinRequests: ...
    @property
    def metrics(self) -> ServerMetrics: ...

    async def create_user(
        self,
        uid: str,
        name: str,
        avatar: str | None = None,
        *,
        session_id: str | None = None,
        ttl: float | None = None,
    ) -> str: ...

    async def rotate_auth_token(self, uid: str) -> str: ...

    async def remove_user(self, uid: str) -> None: ...

    async def approve_join(self, request_id: int) -> JoinRequest: ...

    def reject_join(self, request_id: int) -> JoinRequest: ...


class HttpApi:
    def __init__(self, server: Server) -> None:
        self._server = server

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/health", self.health),
            web.post("/v1/users", self.add_user),
            web.get("/v1/users", self.users),
            # The admin key's side (`callbox users ...`); a user's token is no admin key.
            web.get("/v1/admin/users", self.admin_users),
            web.delete("/v1/admin/users/{uid}", self.remove_user),
            web.post("/v1/admin/users/{uid}/token", self.reset_token),
            web.post("/v1/tokens", self.create_token),
            web.get("/v1/calls", self.calls),
            web.get("/metrics", self.metrics),
            web.post("/v1/join-requests", self.file_join_request),
            web.get("/v1/join-requests", self.join_requests),
            web.get("/v1/join-requests/{id}", self.poll_join_request),
            web.post("/v1/join-requests/{id}/approve", self.approve_join_request),
            web.post("/v1/join-requests/{id}/reject", self.reject_join_request),
        ]

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "version": __version__})

    def _require_admin(self, request: web.Request, what: str) -> None:
        given = _bearer(request)
        if not hmac.compare_digest(given.encode(), self._server.admin_key.encode()):
            raise ServerError("forbidden", f"{what} needs the admin key", status=403)

    # --- kits asking to join (appliance.server.joins) -------------------------------------

    async def file_join_request(self, request: web.Request) -> web.Response:
        body = await _body(request, JoinRequestBody)
        if await self._server.store.user(body.uid) is not None:
            raise ServerError("user-exists", f"{body.uid} is a user already", status=409)
        filed = self._server.joins.file(body, request.remote or "unknown")
        return json_response(
            {"id": filed.id, "secret": filed.secret, "status": filed.status}, status=202
        )

    async def join_requests(self, request: web.Request) -> web.Response:
        self._require_admin(request, "listing join requests")
        return json_response({"requests": [r.public() for r in self._server.joins.pending()]})

    async def poll_join_request(self, request: web.Request) -> web.Response:
        filed = self._server.joins.poll(_request_id(request), _bearer(request))
        reply: dict[str, object] = {"id": filed.id, "status": filed.status}
        if filed.status == "approved":
            reply["auth_token"] = filed.auth_token
        return json_response(reply)

    async def approve_join_request(self, request: web.Request) -> web.Response:
        self._require_admin(request, "approving a kit")
        return json_response((await self._server.approve_join(_request_id(request))).public())

    async def reject_join_request(self, request: web.Request) -> web.Response:
        self._require_admin(request, "rejecting a kit")
        return json_response(self._server.reject_join(_request_id(request)).public())

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus' text format; needs the admin key (a kit that embeds the server
        serves the same figures on its own API, behind the API token)."""
        self._require_admin(request, "metrics")
        body = generate_latest(self._server.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def add_user(self, request: web.Request) -> web.Response:
        self._require_admin(request, "creating users")
        body = await _body(request, NewUser)
        token = await self._server.create_user(
            body.uid, body.name, body.avatar, session_id=body.session_id, ttl=body.ttl
        )
        return json_response({"uid": body.uid, "name": body.name, "auth_token": token}, status=201)

    async def users(self, request: web.Request) -> web.Response:
        _not_a_guest(await self._user(request), "list users")
        return await self._users()

    async def admin_users(self, request: web.Request) -> web.Response:
        self._require_admin(request, "listing users")
        return await self._users()

    async def _users(self) -> web.Response:
        """Every user but guests, online or not."""
        connections = self._server.connections
        users = [
            {"uid": u.uid, "name": u.name, "avatar": u.avatar, "online": connections.online(u.uid)}
            for u in await self._server.store.users()
        ]
        return json_response({"users": users})

    async def remove_user(self, request: web.Request) -> web.Response:
        self._require_admin(request, "removing users")
        uid = _path_uid(request)
        await self._server.remove_user(uid)
        return json_response({"uid": uid, "removed": True})

    async def reset_token(self, request: web.Request) -> web.Response:
        self._require_admin(request, "resetting a user's token")
        uid = _path_uid(request)
        token = await self._server.rotate_auth_token(uid)
        return json_response({"uid": uid, "auth_token": token})

    async def create_token(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await _body(request, TokenRequest)
        if user.is_guest and body.session_id != user.session_id:
            raise ServerError(
                "guest-forbidden",
                "a guest may only join the session it was invited to",
                status=403,
            )
        issued = self._server.tokens.issue(user.uid, body.session_id, until=user.expires_at)
        return json_response(
            {
                "token": issued.token,
                "session_id": issued.session_id,
                "uid": issued.uid,
                "expires_at": issued.expires_at,
            }
        )

    async def calls(self, request: web.Request) -> web.Response:
        user = _not_a_guest(await self._user(request), "read the call log")
        limit = _limit(request.query.get("limit"))
        calls = await self._server.store.calls_of(user.uid, limit)
        return json_response({"calls": [call.model_dump(mode="json") for call in calls]})

    async def _user(self, request: web.Request) -> User:
        user = await self._server.store.user_by_token(_bearer(request))
        if user is None:
            raise ServerError("unauthorized", "unknown auth token", status=401)
        return user


def _not_a_guest(user: User, what: str) -> User:
    if user.is_guest:
        raise ServerError("guest-forbidden", f"a guest may not {what}", status=403)
    return user


def _path_uid(request: web.Request) -> str:
    uid = request.match_info["uid"]
    if not UID_PATTERN.fullmatch(uid):
        raise ServerError("bad-request", "uid: 1-64 letters, digits and _ . @ - only", status=422)
    return uid


def _request_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise ServerError("bad-request", "id: expected a request number", status=422)
    return int(text)


def _bearer(request: web.Request) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ServerError("unauthorized", "send Authorization: Bearer <token>", status=401)
    return credentials.strip()


async def _body(request: web.Request, model: type[Body]) -> Body:
    raw = await request.read()
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise ServerError("bad-request", "body: not valid JSON") from None
    if not isinstance(data, dict):
        raise ServerError("bad-request", "body: expected a JSON object", status=422)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ServerError("bad-request", describe(err, limit=3), status=422) from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_CALLS_LIMIT
    if (
        not (value.isascii() and value.isdigit())
        or len(value) > 6
        or not 1 <= int(value) <= MAX_CALLS_LIMIT
    ):
        raise ServerError(
            "bad-request", f"limit: expected a whole number from 1 to {MAX_CALLS_LIMIT}", status=422
        )
    return int(value)
