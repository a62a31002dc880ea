"""A daemon on fake hardware with its REST API on a free loopback port, and a client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from appliance.config import merge, validate
from appliance.daemon import Daemon

TOKEN = "test-token-0123456789abcdef"


def strict_loads(text: str | bytes) -> Any:
    """JSON as a browser's ``JSON.parse`` reads it: NaN and Infinity are refused."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def daemon_config(tmp: Path, uid: str = "room-a", **overrides: Any) -> dict[str, Any]:
    base = {
        "kit": {"uid": uid, "name": uid.replace("-", " ").title()},
        "server": {"listen": "127.0.0.1:0"},
        "api": {"listen": "127.0.0.1:0", "token": TOKEN},
        "hal": {
            "backend": "fake",
            "camera": {"width": 320, "height": 240, "fps": 15},
            "display": {"width": 640, "height": 360, "fps": 10},  # cheap to compose
        },
        "paths": {"state": str(tmp / uid)},
    }
    return merge(base, overrides)


@contextlib.asynccontextmanager
async def running_daemon(tmp: Path, uid: str = "room-a", **overrides: Any) -> AsyncIterator[Daemon]:
    data = daemon_config(tmp, uid, **overrides)
    daemon = Daemon(validate(data), base_layer=data)
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


class Api:
    """``await api.call("POST", "/session/mute-audio", {"muted": True})`` -> (status, json)."""

    def __init__(self, base: str, token: str | None = TOKEN) -> None:
        self.base = base
        self.token = token
        self.http = aiohttp.ClientSession()

    def headers(self, token: str | None = None) -> dict[str, str]:
        token = token or self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers(token)}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"]["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base + "/api/v1" + path, **kwargs) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, strict_loads(text)  # what a browser can read
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = text
            return response.status, data

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, data)
        return data

    async def close(self) -> None:
        await self.http.close()


@contextlib.asynccontextmanager
async def api_client(daemon: Daemon, token: str | None = TOKEN) -> AsyncIterator[Api]:
    assert daemon.api is not None
    api = Api(daemon.api.url, token)
    try:
        yield api
    finally:
        await api.close()
