"""Smaller things a host on the LAN could learn or break on a running kit: the API token in
a log or left on the screen, secret files others may read, 500s for odd input or a full
disk, tracebacks in the log for malformed HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from appliance.config import validate
from appliance.daemon import Daemon
from tests.api.daemon import TOKEN, Api, api_client, daemon_config, running_daemon


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.asynccontextmanager
async def kit_without_fixed_token(tmp: Path, **overrides: object) -> AsyncIterator[Daemon]:
    data = daemon_config(tmp, **overrides)
    del data["api"]["token"]
    daemon = Daemon(validate(data), base_layer=data)
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


async def test_secret_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    with umask(0o022):
        tls = {"tls": {"enabled": True}}
        async with kit_without_fixed_token(tmp_path, api=tls, server=tls) as kit:
            assert kit.api is not None and kit.api.tokens.fresh_token is not None
            api = Api(kit.api.url, kit.api.tokens.fresh_token)
            await api.http.close()
            api.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
            try:
                await api.ok("PATCH", "/config", {"kit": {"name": "Lobby"}})
            finally:
                await api.close()
            state = kit.config.state_dir
            secrets = [
                "server.db",
                "admin.key",
                "auth_token",
                "api_token.sha256",
                "tls/key.pem",
                "overrides.toml",
            ]
            secrets += [p.name for p in state.glob("server.db-*")]
            for name in secrets:
                mode = stat.S_IMODE((state / name).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
            assert stat.S_IMODE(state.stat().st_mode) & 0o077 == 0


async def test_the_api_token_leaves_the_screen_once_used(tmp_path: Path) -> None:
    async with kit_without_fixed_token(tmp_path) as kit:
        assert kit.api is not None and kit.compositor is not None
        token = kit.api.tokens.fresh_token
        assert token is not None and kit.compositor._home.api_token == token
        async with api_client(kit, token) as api:
            status, _ = await api.call("GET", "/session", token="wrong-" + token)
            assert status == 401 and kit.compositor._home.api_token == token
            await api.ok("GET", "/session")
        assert kit.compositor._home.api_token is None
        assert kit.compositor._home.token_hint is not None
        # a rotated token is shown again, and leaves after token_shown_for
        kit.token_shown_for = 0.2
        async with api_client(kit, token) as api:
            new = (await api.ok("POST", "/token/rotate"))["token"]
        assert kit.compositor._home.api_token == new
        async with asyncio.timeout(10):
            while kit.compositor._home.api_token is not None:
                await asyncio.sleep(0.05)


async def test_a_bearer_only_subprotocol_leaves_no_token_in_the_log(
    kit: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    assert kit.api is not None
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        with contextlib.suppress(aiohttp.WSServerHandshakeError):
            async with http.ws_connect(
                kit.api.url + "/api/v1/events", protocols=(f"bearer.{TOKEN}",)
            ) as ws:
                await ws.close()
    assert TOKEN not in caplog.text


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        return reply


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/health HTTP/1.1\r\nHost: kit\r\nBad Header\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: kit\r\nContent-Length: x\r\n\r\n",
        b"GET /api/v1/\x00health HTTP/1.1\r\nHost: kit\r\n\r\n",
    ],
)
async def test_malformed_http_is_one_quiet_line(
    kit: Daemon, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    assert kit.api is not None and kit.server is not None
    caplog.set_level(logging.DEBUG)
    for url in (kit.api.url, kit.server.url):
        port = int(url.rsplit(":", 1)[1])
        reply = await asyncio.to_thread(_raw_request, port, request_bytes)
        assert reply.split(b"\r\n", 1)[0].split(b" ")[1] == b"400", reply
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == []


async def test_a_huge_limit_is_a_422(kit: Daemon, api: Api) -> None:
    assert kit.server is not None and kit.api is not None
    digits = "9" * 5000
    headers = {"Authorization": f"Bearer {kit.api.context.auth_token}"}
    url = f"{kit.server.url}/v1/calls?limit={digits}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        assert r.status == 422
        assert (await r.json())["error"]["code"] == "bad-request"
    status, body = await api.call("GET", f"/call-log?limit={digits}")
    assert status == 422 and body["error"]["field"] == "limit"


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> None:
    """Writes a file until the file system is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * block)
    finally:
        os.close(fd)


async def test_a_full_disk_is_a_507_in_the_error_format(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "room-a", "2m"):
        async with running_daemon(tmp_path) as kit, api_client(kit) as api:
            await api.ok("PUT", "/session", {"session_id": "full"})
            invite = await api.ok("POST", "/invites", {})
            await asyncio.to_thread(fill, kit.config.state_dir)
            status, body = await api.call("PATCH", "/config", {"kit": {"name": "Lobby"}})
            assert (status, body["error"]["code"]) == (507, "storage-full"), body
            status, body = await api.call(
                "POST", "/join", {"code": invite["code"], "name": "Ann"}, token=""
            )
            assert (status, body["error"]["code"]) == (507, "storage-full"), body
            # the invite was not spent: once there is room, it works
            (kit.config.state_dir / "filler").unlink()
            await api.ok("PATCH", "/config", {"kit": {"name": "Lobby"}})
            status, _ = await api.call(
                "POST", "/join", {"code": invite["code"], "name": "Ann"}, token=""
            )
            assert status == 200


async def test_a_full_disk_refuses_a_token_rotation_with_a_507(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "room-a", "2m"):
        async with kit_without_fixed_token(tmp_path) as kit:
            assert kit.api is not None and kit.api.tokens.fresh_token is not None
            token = kit.api.tokens.fresh_token
            async with api_client(kit, token) as api:
                await asyncio.to_thread(fill, kit.config.state_dir)
                status, body = await api.call("POST", "/token/rotate")
                assert (status, body["error"]["code"]) == (507, "storage-full"), body
                await api.ok("GET", "/session")  # the old token still works
