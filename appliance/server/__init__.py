"""The session server: users, call tokens, WebSocket signaling, ringing and the call log."""

from appliance.server.app import SessionServer
from appliance.server.errors import ServerError, UnknownUser, UserExists

__all__ = ["ServerError", "SessionServer", "UnknownUser", "UserExists"]
