"""The supervisor in-process: a blocked loop starves the watchdog, a crashed watched task
stops the daemon cleanly and makes ``callbox run`` exit non-zero."""

import asyncio
import itertools
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.cli import _run
from appliance.config import validate
from appliance.daemon import Daemon
from appliance.systemd import Notifier, Supervisor
from tests.systemd.notify_socket import listening


async def test_a_blocked_event_loop_stops_the_pings(caplog: pytest.LogCaptureFixture) -> None:
    # The listener reads in a thread, so it would see pings sent while the loop is blocked.
    async with listening(f"@callbox-test-{secrets.token_hex(6)}", in_thread=True) as notify:
        supervisor = Supervisor(Notifier(notify.env_value), watchdog_interval=0.05)
        supervisor.start()
        await notify.wait_for(lambda: len(notify.with_line("WATCHDOG=1")) >= 3, timeout=10)
        with caplog.at_level(logging.WARNING, logger="appliance.systemd.watchdog"):
            before = time.monotonic()
            time.sleep(0.6)  # noqa: ASYNC251 - a stuck loop: blocking on purpose
            after = time.monotonic()
            count = len(notify.with_line("WATCHDOG=1"))
            await notify.wait_for(lambda: len(notify.with_line("WATCHDOG=1")) > count, 10)
        pings = [m.at for m in notify.with_line("WATCHDOG=1")]
        # No ping was sent while the loop was blocked (a ping sent just before the block
        # may be read a moment into it).
        assert not [at for at in pings if before + 0.1 < at < after]
        assert max(b - a for a, b in itertools.pairwise(pings)) > 0.5
        assert any("event loop was blocked" in r.getMessage() for r in caplog.records)
        await supervisor.close()
        count = len(notify.with_line("WATCHDOG=1"))
        await asyncio.sleep(0.2)
        assert len(notify.with_line("WATCHDOG=1")) == count  # closed: no more pings


def kit_config(tmp: Path) -> dict[str, Any]:
    return {
        "kit": {"uid": "lobby", "name": "Lobby"},
        "server": {"listen": "127.0.0.1:0"},
        "api": {"listen": "127.0.0.1:0"},
        "hal": {"backend": "fake", "camera": {"width": 320, "height": 240, "fps": 15}},
        "paths": {"state": str(tmp / "state")},
    }


async def test_a_crashed_background_task_stops_cleanly_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started: list[Daemon] = []
    original_start = Daemon.start

    async def crash_after_start(self: Daemon) -> None:
        await original_start(self)
        started.append(self)

        async def broken() -> None:
            await asyncio.sleep(0.1)
            raise RuntimeError("the LED follower fell over")

        self.supervisor.watch(asyncio.create_task(broken(), name="leds"))

    monkeypatch.setattr(Daemon, "start", crash_after_start)
    config = kit_config(tmp_path)
    async with listening(f"@callbox-test-{secrets.token_hex(6)}") as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.env_value)
        with caplog.at_level(logging.INFO):
            code = await asyncio.wait_for(_run(validate(config), config), 60)
        assert code == 1
        await notify.wait_for(lambda: bool(notify.with_line("STOPPING=1")), timeout=5)
    assert notify.with_line("READY=1")
    crash = next(r for r in caplog.records if r.levelno == logging.CRITICAL)
    assert "'leds' crashed" in crash.getMessage()
    assert crash.exc_info is not None and "fell over" in str(crash.exc_info[1])
    # Stopped cleanly: the call layer and the embedded server are down.
    daemon = started[0]
    assert daemon.calls is not None and not daemon.calls.connected
    assert daemon.server is not None
    with pytest.raises(RuntimeError, match="not running"):
        _ = daemon.server.url
