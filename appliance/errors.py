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


class DaemonError(Exception):
    """A start-up problem the operator must fix (config, missing hardware, no server)."""


class CallsError(CallboxError):
    """A call-API method that cannot run now (``no-active-session``, ``session-active``,
    ``audio-mode-unavailable``, ...) or that the session server refused (``token-expired``,
    ``unknown-user``, ...). Here, below every layer, so the media layer may raise it too;
    ``appliance.calls`` exports it."""

    status = 409


# Errors of a disk with no room left: ENOSPC, EDQUOT, and SQLite's SQLITE_FULL.
_FULL_ERRNOS = frozenset({28, 122})  # errno.ENOSPC, errno.EDQUOT (Linux)


def is_storage_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    return type(exc).__name__ == "OperationalError" and "full" in str(exc).lower()


def storage_error(exc: BaseException) -> CallboxError:
    """What a client is told when the kit's storage failed: 507 if it is full."""
    if is_storage_full(exc):
        return CallboxError(
            "storage-full", "the kit's storage is full: nothing was saved", status=507
        )
    return CallboxError("storage-failed", f"the kit could not save: {exc}", status=500)
