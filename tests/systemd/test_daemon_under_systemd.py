"""``callbox run`` as systemd runs it: a real NOTIFY_SOCKET, a watchdog, stderr connected
the way the journal is (JOURNAL_STREAM), and a far kit calling it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from pathlib import Path
from typing import cast

import pytest

from appliance.server import SessionServer
from appliance.signaling.client import ServerApi, SignalingError
from tests.kits import KitFactory
from tests.systemd.notify_socket import listening

WATCHDOG_USEC = 1_000_000  # the daemon pings every 0.5 s
KIT_TONE = 400.0


class RemoteServer:
    """What KitFactory needs of a session server, for one running in another process."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.admin_key = admin_key

    async def create_user(self, uid: str, name: str) -> str:
        api = ServerApi(self.url)
        try:
            return await api.add_user(self.admin_key, uid, name)
        finally:
            await api.close()


class JournalPipe:
    """A pipe for the daemon's stderr, named in JOURNAL_STREAM like systemd does."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        st = os.fstat(self.write_fd)
        self.journal_stream = f"{st.st_dev}:{st.st_ino}"
        self.lines: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        os.close(self.write_fd)  # the child holds the write end now
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(self.read_fd, "rb")
        )
        try:
            while line := await reader.readline():
                self.lines.append(line.decode().rstrip("\n"))
        finally:
            transport.close()

    async def until_closed(self, timeout: float) -> None:
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout)

    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                await asyncio.sleep(0.02)


def write_config(tmp: Path, admin_key: str) -> Path:
    config = tmp / "callbox.toml"
    config.write_text(
        f"""
[kit]
uid = "lobby"
name = "Lobby"
[server]
listen = "127.0.0.1:0"
admin_key = "{admin_key}"
[api]
listen = "127.0.0.1:0"
[calls]
auto_answer = true
[hal]
backend = "fake"
[hal.audio]
fake_tone_hz = {KIT_TONE}
[hal.camera]
width = 320
height = 240
fps = 15
[paths]
state = "{tmp / "state"}"
"""
    )
    return config


async def run_as_systemd_does(
    config: Path, notify_socket: str, journal: JournalPipe
) -> asyncio.subprocess.Process:
    """``callbox run`` with the environment systemd gives the unit (callbox.service)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=journal.write_fd,
        env={
            **os.environ,
            "NOTIFY_SOCKET": notify_socket,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "JOURNAL_STREAM": journal.journal_stream,
            "PYTHONUNBUFFERED": "1",
        },
    )
    journal.start_reading()
    return proc


async def test_notify_watchdog_status_through_a_call_and_stopping(tmp_path: Path) -> None:
    admin_key = secrets.token_hex(16)
    config = write_config(tmp_path, admin_key)
    journal = JournalPipe()
    async with listening(f"@callbox-test-{secrets.token_hex(6)}") as notify:
        proc = await run_as_systemd_does(config, notify.env_value, journal)
        kits: KitFactory | None = None
        try:
            # READY=1 once everything is up, after "is ready" is logged, with the idle status.
            await notify.wait_for(lambda: bool(notify.with_line("READY=1")), timeout=60)
            ready = notify.with_line("READY=1")[0]
            assert ready.fields["STATUS"] == "Idle"
            assert notify.values("STATUS")[0] == "Starting"
            assert "is ready" in journal.text()

            # The watchdog: pings from the event loop, well inside WATCHDOG_USEC apart.
            await notify.wait_for(lambda: len(notify.with_line("WATCHDOG=1")) >= 6, timeout=30)
            pings = [m.at for m in notify.with_line("WATCHDOG=1")]
            mean_gap = (pings[-1] - pings[0]) / (len(pings) - 1)
            assert 0.1 < mean_gap < WATCHDOG_USEC / 1e6, pings

            # Journal lines carry syslog priorities instead of timestamps.
            url = (await journal.wait_for(r"session server listening on (http://\S+)"))[1]
            lines = [line for line in journal.lines if line]
            assert all(re.match(r"<[0-7]>", line) for line in lines), lines[:5]
            assert any(line.startswith("<4>") and "FAKE HARDWARE" in line for line in lines)
            assert any(line.startswith("<6>appliance.daemon: ") for line in lines)

            # A far kit calls; the daemon answers on its own (auto_answer).
            kits = KitFactory(cast(SessionServer, RemoteServer(url, admin_key)), tmp_path)
            far = await kits("far-kit", controller=True)
            call = await far.calls.initiate_call("lobby", "video")
            await far.wait_for("onUserJoined", lambda user: user["uid"] == "lobby", timeout=30)
            await far.wait_to_hear(KIT_TONE, timeout=30)
            in_call = "In call with 1 participant (Far Kit)"
            await notify.wait_for(lambda: in_call in notify.values("STATUS"), timeout=30)
            statuses = notify.values("STATUS")
            assert statuses.index("Ringing: call from Far Kit") < statuses.index(in_call)
            tag = f"[session {call.session_id}]"
            await journal.wait_for(re.escape(f"<6>appliance.calls.status: {tag} {in_call}"))

            # SIGTERM: STOPPING=1, the call ends cleanly (the far kit sees us leave), exit 0.
            proc.send_signal(signal.SIGTERM)
            left = await far.wait_for("onUserLeft", lambda user: user["uid"] == "lobby", 30)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, journal.text()
            await journal.until_closed(10)
            stopping = notify.with_line("STOPPING=1")
            assert len(stopping) == 1
            assert left.data["name"] == "Lobby"
            assert any(tag in line and "call ended" in line for line in journal.lines)
            # Nothing claims "Idle" once stopping began.
            after = notify.messages[notify.messages.index(stopping[0]) + 1 :]
            assert all(m.fields.get("STATUS") != "Idle" for m in after)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if kits is not None:
                await kits.close()


async def test_a_watchdog_kill_leaves_every_threads_stack_in_the_journal(tmp_path: Path) -> None:
    """systemd kills a unit that stopped pinging with WatchdogSignal (SIGABRT), followed by
    SIGCONT in case it was stopped: the journal then shows where each thread was."""
    config = write_config(tmp_path, secrets.token_hex(16))
    journal = JournalPipe()
    async with listening(f"@callbox-test-{secrets.token_hex(6)}") as notify:
        proc = await run_as_systemd_does(config, notify.env_value, journal)
        try:
            # Up and idle, as a kit is when its loop gets stuck (not amid start-up's thread
            # churn, which a dump of every thread can trip over): ready, and pinging since.
            await notify.wait_for(lambda: bool(notify.with_line("READY=1")), timeout=60)
            ready_at = notify.with_line("READY=1")[0].at
            await notify.wait_for(
                lambda: sum(m.at > ready_at for m in notify.with_line("WATCHDOG=1")) >= 2,
                timeout=60,
            )
            proc.send_signal(signal.SIGSTOP)  # stuck: no more pings
            proc.send_signal(signal.SIGABRT)
            proc.send_signal(signal.SIGCONT)
            assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGABRT
            await journal.until_closed(10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = journal.text()
    assert "Fatal Python error: Aborted" in text, text[-3000:]
    threads = re.findall(r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):$",
                         text, re.MULTILINE)
    # The event loop's thread and the workers beside it (fake hardware, executors).
    assert len(threads) >= 2, text[-3000:]
    assert re.search(r'File ".*asyncio/base_events\.py", line \d+ in run_forever', text), text


async def test_callbox_server_notifies_ready_with_its_url_and_stopping(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:0"\n[paths]\nstate = "{tmp_path}"\n')
    async with listening(f"@callbox-test-{secrets.token_hex(6)}") as notify:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "appliance",
            "server",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "1000000"},
        )
        try:
            await notify.wait_for(lambda: bool(notify.with_line("READY=1")), timeout=30)
            status = notify.with_line("READY=1")[0].fields["STATUS"]
            url = re.fullmatch(r"Session server listening on (http://127\.0\.0\.1:\d+)", status)
            assert url, status
            # Ready means it answers: here, a refusal of an unknown token.
            api = ServerApi(url[1])
            try:
                with pytest.raises(SignalingError) as refused:
                    await api.users("not-a-token")
            finally:
                await api.close()
            assert refused.value.code == "unauthorized"
            await notify.wait_for(lambda: bool(notify.with_line("WATCHDOG=1")), timeout=10)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            assert notify.with_line("STOPPING=1")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
