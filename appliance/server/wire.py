"""Turning one client text frame into a message, or into a refusal that names the field."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from appliance.server.errors import BadMessage
from appliance.signaling.messages import ClientMessage, client_message
from appliance.validation import field_of


class MalformedFrame(BadMessage):
    """``request_id`` is the frame's ``id`` when it had a usable one, so the refusal still
    reaches the request that caused it."""

    def __init__(self, message: str, request_id: int | None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_frame(text: str) -> ClientMessage:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedFrame("body: not valid JSON", None) from None
    if not isinstance(data, dict):
        raise MalformedFrame("body: expected a JSON object", None)
    frame_id = request_id(data)
    try:
        return client_message.validate_python(data)
    except ValidationError as err:
        raise MalformedFrame(describe(err, data.get("type")), frame_id) from None


def describe(err: ValidationError, tag: object) -> str:
    """``session_id: String should match pattern ...`` rather than pydantic's full report."""
    parts = []
    for error in err.errors()[:3]:
        kind = error["type"]
        if kind == "union_tag_not_found":
            parts.append("type: missing; every message needs a type")
        elif kind == "union_tag_invalid":
            parts.append(f"type: unknown message type {tag!r}")
        else:
            parts.append(f"{field_of(error, tag=tag)}: {error['msg']}")
    return "; ".join(parts)


def request_id(data: dict[str, Any]) -> int | None:
    value = data.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53:
        return value
    return None
