"""The WebSocket protocol between kits (or browsers) and the session server."""
