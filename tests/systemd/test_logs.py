"""Logging: the journal's priority prefixes, the terminal format, session ids per task."""

import asyncio
import io
import logging
import os
from pathlib import Path

import pytest

from appliance.logs import (
    CallboxLogHandler,
    JournalFormatter,
    SessionIdFilter,
    session_log_context,
    setup_logging,
    stream_is_journal,
    syslog_priority,
)


def record(level: int, message: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken pipe in the mixer")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("appliance.media", level, __file__, 1, message, (), exc_info)
    SessionIdFilter().filter(rec)
    return rec


def test_each_line_of_a_record_carries_its_priority() -> None:
    text = JournalFormatter().format(record(logging.ERROR, "mixer died", exc=True))
    lines = text.splitlines()
    assert lines[0] == "<3>appliance.media: mixer died"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: broken pipe in the mixer"


@pytest.mark.parametrize(
    ("level", "priority"),
    [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (50, 2)],
)
def test_levels_map_to_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journal_stream_must_name_this_very_stream(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        environ = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stream_is_journal(a, environ)
        assert not stream_is_journal(b, environ)  # stderr redirected elsewhere
        assert not stream_is_journal(a, {})
        assert not stream_is_journal(io.StringIO(), environ)


def test_setup_logging_picks_the_format_and_replaces_its_handler(tmp_path: Path) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        with (tmp_path / "log").open("w+") as stream:
            st = os.fstat(stream.fileno())
            setup_logging(stream=stream, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
            terminal = io.StringIO()
            setup_logging(verbose=True, stream=terminal, environ={})
            assert [h for h in root.handlers if isinstance(h, CallboxLogHandler)] == [
                h for h in root.handlers if getattr(h, "stream", None) is terminal
            ]
            assert root.level == logging.DEBUG
            with session_log_context("s-42"):
                logging.getLogger("appliance.kit").warning("button stuck")
            line = terminal.getvalue().splitlines()[-1]
            assert line.endswith("WARNING appliance.kit: [session s-42] button stuck")
            assert line[:4].isdigit()  # a timestamp first on a terminal
    finally:
        for handler in [h for h in root.handlers if isinstance(h, CallboxLogHandler)]:
            root.removeHandler(handler)
        root.setLevel(level)


async def test_tasks_started_in_a_session_context_keep_its_id() -> None:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(f"{rec.session_tag}{rec.getMessage()}")

    handler = Keep()
    handler.addFilter(SessionIdFilter())
    log = logging.getLogger("tests.session_ids")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:

        async def peer() -> None:
            await asyncio.sleep(0)
            log.info("peer connected")

        with session_log_context("call-1"):
            task = asyncio.create_task(peer())
        log.info("outside")
        await task
        log.info("explicit", extra={"session_id": "call-2"})
    finally:
        log.removeHandler(handler)
    assert seen == ["outside", "[session call-1] peer connected", "[session call-2] explicit"]
