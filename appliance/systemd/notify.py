"""sd_notify(3) without a library: one datagram of ``KEY=value`` lines to the unix socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class NotifyError(ValueError):
    """``NOTIFY_SOCKET`` or ``WATCHDOG_USEC`` holds something we cannot use."""


def socket_address(value: str) -> str:
    """The ``AF_UNIX`` address for a ``NOTIFY_SOCKET`` value."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    raise NotifyError(
        f"NOTIFY_SOCKET={value!r}: expected an absolute socket path or @abstract-name"
    )


class Notifier:
    """Sends state changes to the service manager. Without ``NOTIFY_SOCKET`` (not run by
    systemd, or not ``Type=notify``) every send is a no-op that returns False.

    Sends never block the event loop: the socket is non-blocking, and a full queue on
    the manager's side drops the message (the next status or watchdog ping follows)."""

    def __init__(self, address: str | None) -> None:
        self.address = socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self._last_error: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) as one message."""
        if self.address is None:
            return False
        for line in lines:
            if "=" not in line or "\n" in line:
                raise ValueError(f"not a KEY=value notify line: {line!r}")
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except BlockingIOError:
            log.debug("service manager busy; dropped %s", lines)
            return False
        except OSError as err:
            # Said once per kind of failure, not on every watchdog ping.
            error = f"{type(err).__name__}: {err.strerror or err}"
            if error != self._last_error:
                log.warning("cannot notify the service manager at %s: %s", self.printable, error)
                self._last_error = error
            return False
        self._last_error = None
        return True

    @property
    def printable(self) -> str:
        if self.address is None:
            return "(none)"
        return "@" + self.address[1:] if self.address.startswith("\0") else self.address

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
