"""Listening sockets that one host on the LAN cannot exhaust.

aiohttp waits for a request's headers without a deadline and accepts as many connections as
the process has file descriptors, so a few hundred half-sent requests (slowloris) stall a
server. ``GuardedSite`` is aiohttp's TCP site with, in front of each connection:

- a limit on the connections open from one source address (the extra ones are closed at
  once), so one host cannot take the descriptors of others;
- a deadline for the first request's headers (and for the TLS handshake): a connection that
  has not sent them in time is closed. Later requests on a kept-alive connection are bounded
  by aiohttp's keep-alive timeout, which the servers set to the same order.

``quiet_protocol_errors`` makes a malformed request one line in the log, not a traceback,
and ``guard_loop`` rate-limits the event loop's reports of failed ``accept()`` calls (out of
file descriptors), which otherwise come once a second per listening socket with a traceback.
``raise_nofile_limit`` lifts the soft descriptor limit to the hard one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between two log lines about the same kind of refusal
_HEAD_END = b"\r\n\r\n"


class RateLimitedLog:
    """Logs a message at most once every ``LOG_EVERY`` seconds, with how many were held back."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < LOG_EVERY:
            self._held[key] += 1
            return
        held, self._held[key] = self._held[key], 0
        self._last[key] = now
        suffix = f" ({held} more like it since the last report)" if held else ""
        self._log.warning(message + suffix, *args)


class ConnectionGuard:
    """Counts the connections of each source address and keeps their deadlines."""

    def __init__(
        self,
        name: str,
        *,
        per_address: int,
        header_timeout: float,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.per_address = per_address
        self.header_timeout = header_timeout
        self.exempt = exempt  # addresses without a per-address limit (this machine)
        self.open: Counter[str] = Counter()
        self.refused = 0
        self.timed_out = 0
        self._log = RateLimitedLog(log)

    def factory(self, inner: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            return _GuardedProtocol(self, inner())

        return make

    def admit(self, address: str) -> bool:
        if self.open[address] >= self.per_address and address not in self.exempt:
            self.refused += 1
            self._log.warning(
                f"refused:{address}",
                "%s: refused a connection from %s (already %d open from there)",
                self.name,
                address,
                self.per_address,
            )
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def too_slow(self, address: str) -> None:
        self.timed_out += 1
        self._log.warning(
            f"slow:{address}",
            "%s: closed a connection from %s that sent no complete request in %g s",
            self.name,
            address,
            self.header_timeout,
        )


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's limit and deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.BaseProtocol) -> None:
        self._guard = guard
        self._inner: Any = inner
        self._address: str | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(address):
            _abort(transport)
            return
        self._address = address
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._expire)
        self._inner.connection_made(transport)

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None and self._address is not None:
            self._guard.too_slow(self._address)
            _abort(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._address is None:
            return
        if self._deadline is not None:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._deadline.cancel()
                self._deadline = None
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._address is None:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        address, self._address = self._address, None
        self._transport = None
        if address is None:
            return
        self._guard.release(address)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._address is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._address is not None:
            self._inner.resume_writing()


def _abort(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with a ``ConnectionGuard`` in front of every connection."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:
            extra["ssl_handshake_timeout"] = self._guard.header_timeout
        self._server = await loop.create_server(
            self._guard.factory(server),
            self._host or None,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            **extra,
        )


class _QuietProtocolErrors(logging.Logger):
    """aiohttp's server logger, except that a malformed request (anyone can send one,
    without auth) is one line at INFO rather than a traceback at ERROR."""

    def __init__(self) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.info("%s: %s", str(msg) % args if args else msg, _one_line(exc))
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def quiet_protocol_errors() -> logging.Logger:
    return _QuietProtocolErrors()


def guard_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Rate-limits the loop's reports of failed accept() calls (EMFILE and the like), which
    asyncio makes once a second per listening socket, with a traceback, while they last."""
    previous = loop.get_exception_handler()
    if getattr(previous, "__name__", "") == "_accept_guard":
        return
    limited = RateLimitedLog(log)

    def _accept_guard(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "accept" in message:
            error = context.get("exception")
            limited.warning("accept", "cannot accept connections: %s (%s)", message, error)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(_accept_guard)


def raise_nofile_limit() -> tuple[int, int] | None:
    """Lifts the soft limit on open files to the hard one; returns (soft, hard)."""
    try:
        import resource
    except ImportError:  # not on Linux
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft, hard


class SiteLimits(Protocol):
    """What one host may ask of a listening socket (``ApiLimits``, ``ServerLimits``)."""

    @property
    def connections_per_address(self) -> int: ...
    @property
    def header_timeout(self) -> float: ...
    @property
    def exempt_addresses(self) -> Sequence[str]: ...


async def start_site(
    app: web.Application,
    name: str,
    host: str,
    port: int,
    limits: SiteLimits,
    *,
    ssl_context: ssl.SSLContext | None,
    shutdown_timeout: float,
    keepalive_timeout: float,
) -> tuple[web.AppRunner, ConnectionGuard]:
    """The one start sequence of callbox's HTTP servers (the REST API, the session server):
    a runner without access log, a ConnectionGuard with ``limits`` in front of the socket,
    TLS with ``ssl_context``. Raises OSError if the address is taken (nothing is left open)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=keepalive_timeout,
        logger=quiet_protocol_errors(),
    )
    await runner.setup()
    guard = ConnectionGuard(
        name,
        per_address=limits.connections_per_address,
        header_timeout=limits.header_timeout,
        exempt=frozenset(limits.exempt_addresses),
    )
    guard_loop(asyncio.get_running_loop())
    try:
        await GuardedSite(runner, host, port, guard, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, guard
