"""JSON as callbox sends it over HTTP and WebSockets: strict (RFC 8259).

Python's ``json`` writes NaN and Infinity by default, and a browser's ``JSON.parse``
refuses the whole body: one non-finite level greyed out the control page. Here such a
value is a bug caught where it is written (a logged 500), never a body nobody can read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientWebSocketResponse, web


def dumps(data: Any) -> str:
    return json.dumps(data, allow_nan=False)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)  # noqa: TID251


async def send_json(ws: web.WebSocketResponse | ClientWebSocketResponse, data: Any) -> None:
    await ws.send_json(data, dumps=dumps)
