"""The OpenAPI 3.1 document, generated from the endpoint declarations and their models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from appliance import __version__
from appliance.api.models import ErrorBody
from appliance.api.routing import Endpoint

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    206: "Partial content (a Range request)",
    400: "Not valid JSON, or not a WebSocket upgrade",
    401: "No or wrong bearer token",
    404: "Not found",
    409: "Not possible in the current state",
    416: "Range not satisfiable",
    422: "A field is invalid; error.field names it",
    503: "The session server cannot be reached",
}


def build(
    endpoints: list[Endpoint], extra_models: tuple[type[BaseModel], ...] = ()
) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorBody, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted.append((endpoint.body, "validation"))
        if endpoint.reply is not None:
            wanted.append((endpoint.reply, "serialization"))
    wanted += [(model, "serialization") for model in extra_models]
    wanted = list(dict.fromkeys(wanted))
    refs, definitions = models_json_schema(wanted, ref_template=REF)
    error_ref = refs[(ErrorBody, "serialization")]
    # pydantic marks secrets (SecretStr) writeOnly, which OpenAPI reads as "never in a
    # reply"; the config's replies do carry them, masked ("**********").
    definitions = _without_write_only(definitions)

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation = _operation(endpoint, refs, error_ref)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callbox",
            "version": __version__,
            "description": (
                "Remote control of a callbox kit. Every endpoint but health and this document "
                "needs `Authorization: Bearer <token>`. Errors are always "
                '`{"error": {"code": "...", "message": "..."}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(
    endpoint: Endpoint,
    refs: Mapping[Any, dict[str, Any]],
    error_ref: dict[str, Any],
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _operation_id(endpoint),
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "security": [{"bearer": []}] if endpoint.auth else [],
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "description": p.description,
            "schema": p.adapter().json_schema(ref_template=REF),
        }
        for p in endpoint.params
    ]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
        }
    responses: dict[str, Any] = {}
    if endpoint.websocket:
        responses["101"] = {"description": "Switching protocols: a WebSocket"}
    elif endpoint.raw is not None:
        responses[str(endpoint.status)] = {
            "description": _STATUS_TEXT.get(endpoint.status, "OK"),
            "content": {endpoint.raw.media_type: {"schema": endpoint.raw.schema}},
        }
    elif endpoint.reply is not None:
        responses[str(endpoint.status)] = {
            "description": _STATUS_TEXT.get(endpoint.status, "OK"),
            "content": {"application/json": {"schema": refs[(endpoint.reply, "serialization")]}},
        }
    else:
        responses[str(endpoint.status)] = {"description": _STATUS_TEXT.get(endpoint.status, "")}
    errors = dict(endpoint.errors)
    if endpoint.auth:
        errors.setdefault(401, _STATUS_TEXT[401])
    if endpoint.body is not None:
        errors.setdefault(400, "Not valid JSON")
        errors.setdefault(413, "The body is larger than 64 KiB")
    if endpoint.body is not None or endpoint.params:
        errors.setdefault(422, _STATUS_TEXT[422])
    if endpoint.websocket:
        errors.setdefault(400, "Not a WebSocket upgrade")
    for status, when in sorted(errors.items()):
        responses[str(status)] = {
            "description": when,
            "content": {"application/json": {"schema": error_ref}},
        }
    operation["responses"] = responses
    return operation


def _operation_id(endpoint: Endpoint) -> str:
    words = re.findall(r"[A-Za-z0-9]+", endpoint.path.removeprefix("/api/v1"))
    return endpoint.method.lower() + "".join(w.capitalize() for w in words)


def _without_write_only(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_write_only(v) for k, v in schema.items() if k != "writeOnly"}
    if isinstance(schema, list):
        return [_without_write_only(item) for item in schema]
    return schema
