"""The API's bearer token: fixed in the config, or made on first start and kept only as a
hash in the state directory. Presented tokens are hashed and compared in constant time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from appliance.errors import CallboxError
from appliance.storage import atomic_write_text

log = logging.getLogger(__name__)

TOKEN_FILE = "api_token.sha256"
WEBSOCKET_PROTOCOL = "callbox"  # browsers send the token as a second subprotocol
BEARER_PROTOCOL_PREFIX = "bearer."


def token_hash(token: str) -> str:
    # The token is 256 random bits, so a plain hash is as strong as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


class Unauthorized(CallboxError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__("unauthorized", message)


class TokenStore:
    def __init__(self, state_dir: Path, fixed: str | None) -> None:
        self._path = state_dir / TOKEN_FILE
        self._fixed = fixed
        self._stored: str | None = None  # the generated token's hash, from the state dir
        self.fresh_token: str | None = None  # made on this start or by the last rotation
        self.on_new_token: list[Callable[[str], None]] = []
        # Called once when a freshly made token is first presented (the screen hides it).
        self.on_first_use: list[Callable[[], None]] = []
        self._used = True

    @property
    def fixed(self) -> bool:
        return self._fixed is not None

    async def load(self) -> None:
        """Read the stored hash, or make the first token (logged once, in the clear)."""
        if self._fixed is not None:
            return
        self._stored = await asyncio.to_thread(_read_hash, self._path)
        if self._stored is not None:
            return
        token = await self._replace()
        log.warning(
            "API token created (shown once here and on the screen; only its hash is kept): %s",
            token,
        )

    async def rotate(self) -> str:
        if self._fixed is not None:
            raise CallboxError(
                "token-fixed",
                "the API token is set in the config file ([api] token); change it there",
                status=409,
            )
        token = await self._replace()
        log.warning("API token rotated; the old one no longer works")
        return token

    async def _replace(self) -> str:
        token = secrets.token_urlsafe(32)
        digest = token_hash(token)
        await asyncio.to_thread(atomic_write_text, self._path, digest + "\n")
        self._stored = digest
        self.fresh_token = token
        self._used = False
        for callback in list(self.on_new_token):
            try:
                callback(token)
            except Exception:
                log.exception("new-token callback failed")
        return token

    def valid(self, token: str) -> bool:
        expected = token_hash(self._fixed) if self._fixed is not None else self._stored
        if expected is None:
            return False
        return hmac.compare_digest(token_hash(token), expected)

    def check_request(self, request: web.Request, *, websocket: bool = False) -> None:
        """Raises Unauthorized unless the request carries the token: in the Authorization
        header, or (only for a WebSocket upgrade, as browsers cannot set headers there) as
        the subprotocol ``bearer.<token>`` offered beside ``callbox``."""
        token = presented_token(request, websocket=websocket)
        if token is None:
            raise Unauthorized("send Authorization: Bearer <token>")
        if not self.valid(token):
            raise Unauthorized("wrong API token")
        if not self._used:
            self._used = True
            for callback in list(self.on_first_use):
                try:
                    callback()
                except Exception:
                    log.exception("first-use callback failed")


def presented_token(request: web.Request, *, websocket: bool = False) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if not (websocket and _is_upgrade(request)):
        return None
    # A browser's WebSocket cannot set headers: it offers ["callbox", "bearer.<token>"].
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    for protocol in offered:
        if protocol.startswith(BEARER_PROTOCOL_PREFIX):
            if WEBSOCKET_PROTOCOL not in offered:
                # aiohttp would log the offered protocols (the token with them) as not
                # overlapping ours: refuse before the handshake instead.
                raise Unauthorized(
                    f"offer the subprotocol {WEBSOCKET_PROTOCOL!r} with the bearer token"
                )
            return protocol.removeprefix(BEARER_PROTOCOL_PREFIX) or None
    return None


def _is_upgrade(request: web.Request) -> bool:
    return request.method == "GET" and "websocket" in request.headers.get("Upgrade", "").lower()


def _read_hash(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        log.error("%s is damaged; making a new API token", path)
        return None
    return text
