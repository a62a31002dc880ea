"""One error hierarchy for callbox; the REST API maps ``status`` and ``code`` to HTTP."""

from __future__ import annotations


class CallboxError(Exception):
    """An error a client can act on: ``code`` is stable, ``message`` is for people."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
