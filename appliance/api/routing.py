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
from appliance.errors import CallboxError, storage_error
from appliance.httperrors import json_errors as shared_json_errors
from appliance.jsonwire import json_response
from appliance.validation import problems
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


def _hardware_error(err: Exception) -> CallboxError | None:
    return (
        CallboxError("device-error", str(err), status=409)
        if isinstance(err, HardwareError)
        else None
    )


# Every refusal as ``{"error": {"code", "message"}}``; a bug is a logged 500.
json_errors = shared_json_errors(
    log,
    storage_full=storage_error(OSError(28, "full")).message,
    translate=_hardware_error,
    challenge='Bearer realm="callbox"',
)


def describe(err: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field, sentence) naming the first problem of a pydantic validation error."""
    ((name, message),) = problems(err, prefix=prefix)
    return name, f"{name}: {message}"


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
        return json_response(result.model_dump(mode="json"), status=endpoint.status)

    return web.route(endpoint.method, endpoint.path, handle)
