"""A call token as a kit holds it: what the session server issued for one session."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallToken:
    """What generate_token() returns: a signed token for one session and one user."""

    token: str
    session_id: str
    uid: str
    expires_at: float
