from __future__ import annotations

from appliance.errors import CallboxError


class CallsError(CallboxError):
    """A call-API method that cannot run now (``no-active-session``, ``session-active``,
    ``audio-mode-unavailable``, ...) or that the session server refused (``token-expired``,
    ``unknown-user``, ...)."""

    status = 409


def no_active_session() -> CallsError:
    return CallsError("no-active-session", "there is no active call session")
