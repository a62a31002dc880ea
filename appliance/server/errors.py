"""Refusals of the session server: a stable ``code``, a ``message`` for people, and the
HTTP status the REST side answers with (the WebSocket side sends only code and message)."""

from __future__ import annotations


class ServerError(Exception):
    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


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
