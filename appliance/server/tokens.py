"""Call tokens: JWTs (HS256) that let one user join one session until they expire.

Only HS256 is accepted when verifying, so a token whose header says ``none`` or another
algorithm is refused however it is signed. A token issued before its session ended cannot
open the session again (``token-replayed``); a fresh token can.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from appliance.server.errors import ServerError

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "sid", "iat", "exp", "jti"]


class TokenRefused(ServerError):
    """``code`` is one of token-invalid, token-expired, token-wrong-session,
    token-wrong-user, token-replayed."""

    status = 403


@dataclass(frozen=True)
class IssuedToken:
    token: str
    session_id: str
    uid: str
    expires_at: float


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def new_auth_token() -> str:
    """A user's auth token (or the admin key): 32 random bytes, URL-safe. Never starting
    with "-", so it can follow an option on a command line (argparse took one that did
    for an option of its own)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


class CallTokens:
    def __init__(self, ttl: float, secret: str | None = None) -> None:
        self._ttl = ttl
        self._secret = secret  # the server loads its persisted secret when it starts
        self._ended: dict[str, float] = {}  # session id -> when it last ended

    def use_secret(self, secret: str) -> None:
        self._secret = secret

    def _key(self) -> str:
        if self._secret is None:
            raise RuntimeError("call tokens have no signing secret yet")
        return self._secret

    def issue(self, uid: str, session_id: str, *, until: float | None = None) -> IssuedToken:
        """A token for ``uid`` to join ``session_id``, expiring after the TTL (or at
        ``until``, if sooner: a guest's token ends with its credentials)."""
        issued_at = time.time()
        expires_at = issued_at + self._ttl
        if until is not None:
            expires_at = min(expires_at, until)
        claims = {
            "sub": uid,
            "sid": session_id,
            "iat": issued_at,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(12),
        }
        import jwt  # at the first call, not at start: PyJWT loads cryptography (~20 MiB)

        token = jwt.encode(claims, self._key(), algorithm=ALGORITHM)
        return IssuedToken(token, session_id, uid, expires_at)

    def verify(self, token: str, *, session_id: str, uid: str) -> dict[str, Any]:
        """The token's claims, if it lets ``uid`` join ``session_id`` now."""
        import jwt  # see issue

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(),
                algorithms=[ALGORITHM],
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("token-expired", "the call token has expired") from None
        except jwt.InvalidTokenError as err:
            raise TokenRefused("token-invalid", f"the call token is not valid: {err}") from None
        if not isinstance(claims.get("sid"), str) or not isinstance(claims["iat"], int | float):
            raise TokenRefused("token-invalid", "the call token's claims are malformed")
        if claims["sid"] != session_id:
            raise TokenRefused(
                "token-wrong-session", f"the call token is not for session {session_id!r}"
            )
        if claims["sub"] != uid:
            raise TokenRefused("token-wrong-user", f"the call token is not for user {uid!r}")
        ended_at = self._ended.get(session_id)
        if ended_at is not None and claims["iat"] < ended_at:
            raise TokenRefused(
                "token-replayed",
                "the call token was issued before its session ended; generate a new one",
            )
        return claims

    def session_ended(self, session_id: str, ended_at: float) -> None:
        self._ended[session_id] = ended_at
        self._forget_older_than(ended_at - self._ttl)

    def ended_sessions(self) -> list[str]:
        return list(self._ended)

    def load_session_ends(self, ends: dict[str, float]) -> None:
        self._ended.update(ends)

    @property
    def horizon(self) -> float:
        """Sessions that ended before this can only be replayed with expired tokens."""
        return time.time() - self._ttl

    def _forget_older_than(self, horizon: float) -> None:
        # Any token issued before the horizon has expired by now, so the record is moot.
        stale = [sid for sid, at in self._ended.items() if at < horizon]
        for sid in stale:
            del self._ended[sid]
