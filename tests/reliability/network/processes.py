"""A session server and kits as processes of their own (``callbox server``, ``callbox run``),
optionally inside a network namespace, driven from the test through their HTTP APIs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from appliance.config import to_toml
from appliance.signaling.client import ServerApi

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 60.0  # two cores shared by several test runs: a cold start can be slow
STOP_TIMEOUT = 20.0


class Process:
    """One child process, its output in ``log``; inside ``netns`` when given."""

    def __init__(self, name: str, argv: list[str], log: Path, netns: str | None = None) -> None:
        self.name = name
        self.argv = ["ip", "netns", "exec", netns, *argv] if netns else argv
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, env: dict[str, str] | None = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self) -> int | None:
        """SIGTERM (the daemon ends its call cleanly), SIGKILL if it does not go."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            return await process.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"


async def wait_until_answers(url: str, process: Process, timeout: float = START_TIMEOUT) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)


class ServerProcess:
    """``callbox server`` on ``listen``; stop and start it again on the same port and
    database, as a LAN box restarting."""

    def __init__(
        self,
        where: Path,
        listen: str,
        *,
        url: str | None = None,
        netns: str | None = None,
        **settings: Any,
    ) -> None:
        self.url = url or f"http://{listen}"
        self.admin_key = secrets.token_urlsafe(24)
        config = {
            "server": {
                "embedded": False,
                "listen": listen,
                "admin_key": self.admin_key,
                "database": str(where / "server.db"),
                **settings,
            },
            "paths": {"state": str(where)},
        }
        where.mkdir(parents=True, exist_ok=True)
        self.config = where / "server.toml"
        self.config.write_text(to_toml(config))
        argv = [sys.executable, "-m", "appliance", "server", "--config", str(self.config)]
        self.process = Process("session server", argv, where / "server.log", netns)

    async def start(self) -> None:
        await self.process.start()
        await wait_until_answers(self.url + "/v1/health", self.process)

    async def stop(self) -> None:
        await self.process.stop()

    async def create_user(self, uid: str, name: str) -> str:
        api = ServerApi(self.url)
        try:
            return await api.add_user(self.admin_key, uid, name)
        finally:
            await api.close()
