from __future__ import annotations

from appliance.errors import CallsError

__all__ = ["CallsError", "no_active_session"]


def no_active_session() -> CallsError:
    return CallsError("no-active-session", "there is no active call session")
