"""Debian's Janus started for a test: its own config directory, free loopback ports, the
VideoRoom plugin and the WebSocket (API) and HTTP (admin API) transports only."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.kits import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Only these are linked into the private plugin and transport folders, so nothing else
# (MQTT, RabbitMQ, the other plugins) is loaded or opens a port.
PLUGINS = ("libjanus_videoroom.so",)
TRANSPORTS = ("libjanus_websockets.so", "libjanus_http.so")


def janus_binary() -> str | None:
    return shutil.which("janus")


def _library_folder(kind: str, name: str) -> Path | None:
    for found in sorted(glob.glob(f"/usr/lib/*/janus/{kind}/{name}")) + sorted(
        glob.glob(f"/usr/lib/janus/{kind}/{name}")
    ):
        return Path(found).parent
    return None


def missing_reason() -> str | None:
    """Why Janus cannot run here, or None when it can."""
    if janus_binary() is None:
        return "Debian's janus package is not installed (make test installs it as root)"
    for kind, names in (("plugins", PLUGINS), ("transports", TRANSPORTS)):
        for name in names:
            if _library_folder(kind, name) is None:
                return f"janus is installed without its {name}"
    return None


@dataclass
class JanusProcess:
    """One Janus: ``url`` for its WebSocket API, ``admin_url`` for its HTTP admin API."""

    directory: Path
    ws_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    admin_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    api_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    room_admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    rtp_ports: str = "20000-40000"
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/admin"

    @property
    def log_path(self) -> Path:
        return self.directory / "janus.log"

    def config(self) -> dict[str, object]:
        """This Janus as an entry of ``[server] janus``."""
        return {
            "url": self.url,
            "admin_url": self.admin_url,
            "admin_secret": self.admin_secret,
            "api_secret": self.api_secret,
            "room_admin_key": self.room_admin_key,
        }

    def write_config(self) -> Path:
        conf = self.directory / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        folders = {}
        for kind, names in (("plugins", PLUGINS), ("transports", TRANSPORTS)):
            folder = self.directory / kind
            folder.mkdir(exist_ok=True)
            for name in names:
                link = folder / name
                if not link.exists():
                    source = _library_folder(kind, name)
                    assert source is not None, missing_reason()
                    link.symlink_to(source / name)
            folders[kind] = folder
        empty = self.directory / "empty"
        empty.mkdir(exist_ok=True)
        (conf / "janus.jcfg").write_text(
            f"""general: {{
	configs_folder = "{conf}"
	plugins_folder = "{folders["plugins"]}"
	transports_folder = "{folders["transports"]}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	log_to_stdout = false
	log_to_file = "{self.log_path}"
	debug_level = 4
	admin_secret = "{self.admin_secret}"
	api_secret = "{self.api_secret}"
	session_timeout = 60
	protected_folders = ["/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr"]
}}
media: {{
	rtp_port_range = "{self.rtp_ports}"
}}
nat: {{
	nice_debug = false
	ice_ignore_list = "vmnet"
}}
"""
        )
        (conf / "janus.plugin.videoroom.jcfg").write_text(
            f"""general: {{
	admin_key = "{self.room_admin_key}"
}}
"""
        )
        (conf / "janus.transport.websockets.jcfg").write_text(
            f"""general: {{
	json = "compact"
	ws = true
	ws_port = {self.ws_port}
	ws_ip = "127.0.0.1"
	wss = false
}}
admin: {{
	admin_ws = false
	admin_wss = false
}}
"""
        )
        (conf / "janus.transport.http.jcfg").write_text(
            f"""general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {self.http_port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_base_path = "/admin"
	admin_http = true
	admin_port = {self.admin_port}
	admin_ip = "127.0.0.1"
	admin_https = false
}}
"""
        )
        return conf

    async def start(self) -> None:
        binary = janus_binary()
        assert binary is not None, missing_reason()
        conf = self.write_config()
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--configs-folder",
            str(conf),
            "--config",
            str(conf / "janus.jcfg"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self.process is not None
        async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"janus exited with {self.process.returncode}: {self.log()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.ws_connect(self.url, protocols=("janus-protocol",)) as ws:
                        await ws.send_json(
                            {"janus": "info", "transaction": "ready", "apisecret": self.api_secret}
                        )
                        reply = await ws.receive_json(timeout=5)
                        if reply.get("janus") == "server_info":
                            return
                await asyncio.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """Janus dies at once, as in a crash."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def admin(self, request: str, **fields: object) -> dict[str, object]:
        """One admin API request; its reply."""
        body = {
            "janus": request,
            "transaction": secrets.token_hex(6),
            "admin_secret": self.admin_secret,
            **fields,
        }
        path = self.admin_url
        for key in ("session_id", "handle_id"):
            if key in body:
                path += f"/{body.pop(key)}"
        async with aiohttp.ClientSession() as http, http.post(path, json=body) as response:
            reply: dict[str, object] = await response.json(content_type=None)
        return reply


@contextlib.asynccontextmanager
async def running_janus(directory: Path) -> AsyncIterator[JanusProcess]:
    janus = JanusProcess(directory)
    await janus.start()
    try:
        yield janus
    finally:
        await janus.stop()
