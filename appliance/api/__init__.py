"""The REST API, the events WebSocket and the web pages (``ApiServer``)."""

from appliance.api.server import ApiServer

__all__ = ["ApiServer"]
