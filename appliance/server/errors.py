"""Refusals of the session server: a stable ``code``, a ``message`` for people, and the
HTTP status the REST side answers with (the WebSocket side sends only code and message)."""

from __future__ import annotations

from appliance.errors import CallboxError


class ServerError(CallboxError):
    """A refusal by the session server (callbox's one error hierarchy: code, message,
    status)."""


class UserExists(ServerError):
    status = 409

    def __init__(self, uid: str) -> None:
        super().__init__("user-exists", f"user {uid!r} already exists")


class UnknownUser(ServerError):
    status = 404

    def __init__(self, uid: str) -> None:
        super().__init__("unknown-user", f"no user {uid!r}")


class BadMessage(ServerError):
    """Input that does not parse or validate; the message names the field."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__("bad-message", message, status=status)
