"""Logging set-up: the journal when systemd runs us, a readable terminal format otherwise,
and the call session id on every line logged on a call's behalf.

Under systemd (``JOURNAL_STREAM`` names our stderr) each line starts with an sd-daemon(3)
``<N>`` syslog priority, so ``journalctl -p warning`` works without a journal library;
the journal adds its own timestamps. On a terminal lines carry a timestamp and level.

The session id comes from a context variable: code that works for a session runs inside
``session_log_context(session_id)``, and tasks started there inherit it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TextIO

# Per task (asyncio copies the context into every task it starts), never shared state.
session_id_var: ContextVar[str | None] = ContextVar("callbox_session_id", default=None)

QUIET_LOGGERS = ("aioice", "aiortc", "aiohttp.access")
TERMINAL_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(session_tag)s%(message)s"
JOURNAL_FORMAT = "%(name)s: %(session_tag)s%(message)s"


@contextlib.contextmanager
def session_log_context(session_id: str | None) -> Iterator[None]:
    """Lines logged inside (and in tasks created inside) carry ``session_id``."""
    token = session_id_var.set(session_id)
    try:
        yield
    finally:
        session_id_var.reset(token)


class SessionIdFilter(logging.Filter):
    """Sets ``record.session_id`` (an ``extra={"session_id": ...}`` wins over the context)
    and ``record.session_tag``, the ``[session ID] `` prefix or an empty string."""

    def filter(self, record: logging.LogRecord) -> bool:
        session_id = getattr(record, "session_id", None) or session_id_var.get()
        record.session_id = session_id
        record.session_tag = f"[session {session_id}] " if session_id else ""
        return True


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) for a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Prefixes every line of a record (tracebacks included) with its ``<N>`` priority, so
    a multi-line record keeps its level in the journal."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when systemd connected ``stream`` to the journal: ``JOURNAL_STREAM`` holds the
    ``device:inode`` of that stream (a child whose stderr was redirected keeps the
    variable but not the stream, so the variable alone is not enough)."""
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class CallboxLogHandler(logging.StreamHandler[TextIO]):
    """The handler ``setup_logging`` installs; a later call replaces it, not adds one."""


def setup_logging(
    verbose: bool = False,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    stream = stream if stream is not None else sys.stderr
    environ = environ if environ is not None else os.environ
    handler = CallboxLogHandler(stream)
    handler.addFilter(SessionIdFilter())
    if stream_is_journal(stream, environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, CallboxLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
