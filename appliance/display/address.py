"""The address people type to reach this kit's API, as the home screen shows it."""

from __future__ import annotations

import contextlib
import socket

from appliance.config import split_hostport

ANY_ADDRESS = ("0.0.0.0", "::", "")


def api_address(listen: str, bound_port: int | None = None) -> str:
    """``http://host:port`` for an ``[api] listen`` value (with the port actually bound, when
    it asked for any); a wildcard host becomes the address of the interface that reaches the
    network (no packet is sent to find it)."""
    host, port = split_hostport(listen)
    port = bound_port or port
    if host in ANY_ADDRESS:
        host = primary_ip(ipv6=host == "::") or socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def primary_ip(*, ipv6: bool = False) -> str | None:
    family, probe = (
        (socket.AF_INET6, ("2001:db8::1", 9)) if ipv6 else (socket.AF_INET, ("192.0.2.1", 9))
    )
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(probe)  # UDP: only picks a route
        address = sock.getsockname()[0]
        return str(address)
    return None
