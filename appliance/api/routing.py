"""Endpoints as data: each one names its body, reply and parameter models, and the same
declaration drives validation, serialisation and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from appliance.api.auth import TokenStore
from appliance.api.models import ErrorBody, ErrorDetail
from appliance.errors import CallboxError, is_storage_full, storage_error
from hal.errors import HardwareError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[BaseModel | web.StreamResponse | None]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
BODY = web.RequestKey("body", BaseModel)
PARAMS = web.RequestKey("params", dict[str, Any])


@dataclass(frozen=True)
class Param:
    name: str
    type: Any  # an annotation pydantic can validate (Annotated with Field constraints)
    where: str = "path"  # or "query"
    description: str = ""
    required: bool = True

    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.type)


@dataclass(frozen=True)
class Raw:
    """A reply that is not JSON: its media type and how OpenAPI should describe it."""

    media_type: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string", "format": "binary"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    reply: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    params: tuple[Param, ...] = ()
    raw: Raw | None = None
    websocket: bool = False
    errors: dict[int, str] = field(default_factory=dict)  # status -> when
    description: str = ""


class ApiError(CallboxError):
    """A refusal from the API layer itself (auth, bad input, unknown thing)."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, field: str | None = None
    ) -> None:
        super().__init__(code, message, status=status)
        self.field = field


def error_response(code: str, message: str, status: int, field: str | None = None) -> web.Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    headers = {"WWW-Authenticate": 'Bearer realm="callbox"'} if status == 401 else None
    return web.json_response(
        body.model_dump(mode="json", exclude_none=True), status=status, headers=headers
    )


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every refusal as ``{"error": {"code", "message"}}``; a bug is a logged 500."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.code, err.message, err.status, err.field)
    except CallboxError as err:
        return error_response(err.code, err.message, err.status)
    except HardwareError as err:
        return error_response("device-error", str(err), 409)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = (err.reason or "error").lower().replace(" ", "-")
        return error_response(code, err.reason or "error", err.status)
    except Exception as err:
        if is_storage_full(err):
            log.error("%s %s: the storage is full: %s", request.method, request.path, err)
            full = storage_error(err)
            return error_response(full.code, full.message, full.status)
        log.exception("%s %s failed", request.method, request.path)
        return error_response("internal", "internal error", 500)


def describe(err: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field, sentence) naming the first problem of a pydantic validation error."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    name = ".".join(part for part in (prefix, where) if part) or "body"
    # A validator's own sentence is for people as it is: no "Value error, " before it.
    return name, f"{name}: {str(first['msg']).removeprefix('Value error, ')}"


def _parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    if not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("invalid-json", "body: not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise ApiError("invalid-field", "body: expected a JSON object", status=422, field="body")
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        name, message = describe(err)
        raise ApiError("invalid-field", message, status=422, field=name) from None


def body_of(request: web.Request, model: type[M]) -> M:
    """The validated body of this request (the endpoint's ``body`` model)."""
    body = request[BODY]
    if not isinstance(body, model):
        raise TypeError(f"endpoint body is {type(body).__name__}, not {model.__name__}")
    return body


def optional_param(request: web.Request, name: str, kind: type[T]) -> T | None:
    """A validated path or query parameter of this request; None when not given."""
    value = request[PARAMS].get(name)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"parameter {name} is {type(value).__name__}")
    return value


def param(request: web.Request, name: str, kind: type[T]) -> T:
    value = optional_param(request, name, kind)
    if value is None:
        raise TypeError(f"parameter {name} is missing")
    return value


def bind(endpoint: Endpoint, tokens: TokenStore) -> web.RouteDef:
    """The aiohttp route for ``endpoint``: auth, parameters and body checked in that order,
    the reply checked against its model before it is sent."""
    adapters = {p.name: p.adapter() for p in endpoint.params}

    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.auth:
            tokens.check_request(request, websocket=endpoint.websocket)
        values: dict[str, Any] = {}
        for spec in endpoint.params:
            source = request.match_info if spec.where == "path" else request.query
            raw = source.get(spec.name)
            if raw is None:
                if spec.required:
                    raise ApiError(
                        "invalid-field", f"{spec.name}: required", status=422, field=spec.name
                    )
                continue
            try:
                values[spec.name] = adapters[spec.name].validate_strings(raw)
            except ValidationError as err:
                _, message = describe(err, spec.name)
                raise ApiError("invalid-field", message, status=422, field=spec.name) from None
        request[PARAMS] = values
        if endpoint.body is not None:
            request[BODY] = _parse_body(endpoint.body, await request.read())
        result = await endpoint.handler(request)
        if isinstance(result, web.StreamResponse):
            return result
        if endpoint.reply is None:
            if result is not None:
                raise TypeError(f"{endpoint.path} returned a body it does not declare")
            return web.Response(status=endpoint.status)
        if not isinstance(result, endpoint.reply):
            raise TypeError(f"{endpoint.path} returned {type(result).__name__}")
        return web.json_response(result.model_dump(mode="json"), status=endpoint.status)

    return web.route(endpoint.method, endpoint.path, handle)
