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


API_TOKEN = "network-test-token-0123456789"


class KitProcess:
    """``callbox run`` on fake hardware (small video), started through ``impaired_kit`` so
    the datagram shim can be switched on (``impairment`` file); watched through its REST API
    and its events WebSocket, every event kept in ``events``."""

    def __init__(
        self,
        where: Path,
        uid: str,
        *,
        tone_hz: float,
        server_url: str,
        auth_token: str,
        api_address: str,
        netns: str | None = None,
    ) -> None:
        self.uid = uid
        self.api = f"http://{api_address}:8080/api/v1"
        self.impairment = where / "impairment.json"
        config = {
            "kit": {"uid": uid, "name": uid.replace("-", " ").title()},
            "server": {"embedded": False, "url": server_url, "auth_token": auth_token},
            "api": {"listen": "0.0.0.0:8080", "token": API_TOKEN},
            "hal": {
                "backend": "fake",
                "audio": {"fake_tone_hz": tone_hz},
                "camera": {"width": 320, "height": 240, "fps": 15},
                "display": {"width": 640, "height": 360, "fps": 5},  # composed, never looked at
            },
            "paths": {"state": str(where)},
        }
        where.mkdir(parents=True, exist_ok=True)
        self.config = where / "kit.toml"
        self.config.write_text(to_toml(config))
        module = "tests.reliability.network.impaired_kit"
        argv = [sys.executable, "-m", module, "run", "--config", str(self.config)]
        self.process = Process(uid, argv, where / "kit.log", netns)
        self.events: list[dict[str, Any]] = []
        self._http: aiohttp.ClientSession | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from tests.reliability.network.impair import ENVIRONMENT

        await self.process.start(env={ENVIRONMENT: str(self.impairment)})
        await wait_until_answers(self.api + "/health", self.process)
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_TOKEN}"})
        ws = await self._http.ws_connect(self.api + "/events", heartbeat=None)
        self._listener = asyncio.create_task(self._listen(ws), name=f"{self.uid} events")

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(message.json())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        if self._http is not None:
            await self._http.close()
        await self.process.stop()

    async def call(self, method: str, path: str, body: Any = None, *, allow: int = 0) -> Any:
        """The reply's body; a status >= 400 other than ``allow`` fails."""
        assert self._http is not None
        async with self._http.request(method, self.api + path, json=body) as response:
            data = await response.json(content_type=None)
            if response.status >= 400 and response.status != allow:
                raise AssertionError(f"{self.uid}: {method} {path}: {response.status} {data}")
            return data

    async def session(self) -> dict[str, Any]:
        return await self.call("GET", "/session")  # type: ignore[no-any-return]

    async def received_from(self, uid: str) -> dict[str, Any]:
        """What this kit's GET /api/v1/session says arrives from ``uid``."""
        participants = (await self.session())["participants"]
        (far,) = [p for p in participants if p["uid"] == uid]
        return far["media"]  # type: ignore[no-any-return]

    def named(self, event: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e["event"] == event]

    async def wait_for(
        self, event: str, where: Any = lambda data: True, timeout: float = 30.0, after: int = 0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for record in self.events[after:]:
                    if record["event"] == event and where(record["data"]):
                        return record
                await asyncio.sleep(0.1)
