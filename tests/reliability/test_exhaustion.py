"""Hosts on the LAN that open sockets and never finish with them: WebSockets that never say
hello, requests whose headers never end (slowloris). Each attacker is a loopback address of
its own (127.0.0.2, 127.0.0.3...: client sockets bound to it), so the per-address limits
are really exercised; the limits and the header deadline are set small in the config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.daemon import Daemon
from tests.api.daemon import TOKEN, running_daemon
from tests.kits import free_port

LIMITS = {
    "unauthenticated": 40,
    "unauthenticated_per_address": 8,
    "unauthenticated_reserved": 8,
    "connections_per_address": 12,
    "header_timeout": 1.0,
}


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(
        tmp_path,
        server={"limits": LIMITS},
        api={"limits": {"connections_per_address": 10, "header_timeout": 1.0}},
    ) as daemon:
        yield daemon


@contextlib.asynccontextmanager
async def host(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose sockets come from ``address``."""
    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def silent_sockets(
    http: aiohttp.ClientSession, url: str, count: int
) -> tuple[list[aiohttp.ClientWebSocketResponse], int]:
    """Opens ``count`` WebSockets that never say hello: (those the server keeps, how many
    it turned away: server-busy, or the connection refused outright)."""

    async def one() -> aiohttp.ClientWebSocketResponse | None:
        try:
            ws = await http.ws_connect(url, autoping=False)
        except (aiohttp.ClientError, OSError):
            return None
        await ws.ping()  # a socket the server keeps answers it while it waits for a hello
        frame = await ws.receive(timeout=30)
        if frame.type == aiohttp.WSMsgType.PONG:
            return ws
        if frame.type == aiohttp.WSMsgType.TEXT:
            assert frame.json()["code"] == "server-busy"
        await ws.close()
        return None

    results = await asyncio.gather(*(one() for _ in range(count)))
    kept = [ws for ws in results if ws is not None]
    return kept, count - len(kept)


async def test_one_host_cannot_take_the_sign_in_slots_of_others(kit: Daemon) -> None:
    assert kit.server is not None
    ws_url = kit.server.url.replace("http", "ws", 1) + "/v1/ws"
    kit_token = await kit.server.create_user("room-b", "Room B")
    held: list[aiohttp.ClientWebSocketResponse] = []
    async with contextlib.AsyncExitStack() as stack:
        # A kit at 127.0.0.9 signs in once: the server knows its address.
        known = await stack.enter_async_context(host("127.0.0.9"))
        ws = await known.ws_connect(ws_url)
        await ws.send_json({"type": "hello", "id": 1, "auth_token": kit_token})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        await ws.close()

        attacker = await stack.enter_async_context(host("127.0.0.2"))
        kept, refused = await silent_sockets(attacker, ws_url, 20)
        assert len(kept) == 8 and refused == 12  # the per-address limit
        held += kept
        for address in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
            other = await stack.enter_async_context(host(address))
            kept, _ = await silent_sockets(other, ws_url, 8)
            held += kept
        assert len(held) == 32  # all but the reserved share
        stranger = await stack.enter_async_context(host("127.0.0.6"))
        kept, refused = await silent_sockets(stranger, ws_url, 1)
        assert (len(kept), refused) == (0, 1)
        # the known kit still gets in and signs in
        ws = await known.ws_connect(ws_url)
        await ws.send_json({"type": "hello", "id": 1, "auth_token": kit_token})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        await ws.close()
        for ws in held:
            await ws.close()


def _half_sent(address: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: kit\r\nX-Slow: ")
    sock.setblocking(False)
    return sock


async def _closed_by_server(sock: socket.socket) -> bool:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.sock_recv(sock, 1024), 20) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("target", ["api", "server"])
async def test_slowloris_is_cut_off(
    kit: Daemon, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert kit.api is not None and kit.server is not None
    base = kit.api.url if target == "api" else kit.server.url
    port = int(base.rsplit(":", 1)[1])
    limit = 10 if target == "api" else 12
    caplog.set_level(logging.INFO, logger="appliance.netguard")
    sockets: list[socket.socket] = []
    try:
        for address in ("127.0.0.2", "127.0.0.3"):
            sockets += [_half_sent(address, port) for _ in range(limit + 15)]
        # Everything past the per-address limit is closed at once, the rest at the deadline.
        closed = await asyncio.gather(*(_closed_by_server(s) for s in sockets))
        assert all(closed)
        # Meanwhile, and after, everyone else is served.
        async with aiohttp.ClientSession() as http:
            path = "/api/v1/health" if target == "api" else "/v1/health"
            async with http.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
    finally:
        for sock in sockets:
            sock.close()
    guard: Any = kit.api.guard if target == "api" else kit.server.guard
    assert guard.refused == 2 * 15 and guard.timed_out == 2 * limit
    # a few log lines, not one per connection
    assert len([r for r in caplog.records if r.name == "appliance.netguard"]) <= 4


FD_LIMIT = 48


def _server_process(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """``callbox server`` with few file descriptors (soft and hard limit), so that a few
    dozen connections make its accept() fail with EMFILE."""
    config = tmp / "server.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\n'
        "[server.limits]\nconnections_per_address = 1000\n"
        f'[paths]\nstate = "{tmp / "state"}"\n'
    )

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "server", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=few_descriptors,
    )


def test_accept_errors_are_logged_a_few_times_not_a_flood(tmp_path: Path) -> None:
    port = free_port()
    server = _server_process(tmp_path, port)
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        for index in range(2 * FD_LIMIT):  # more than it has descriptors for
            sock = socket.socket()
            sock.bind((f"127.0.0.{2 + index % 4}", 0))
            sock.connect(("127.0.0.1", port))
            sockets.append(sock)
        time.sleep(3.5)  # asyncio retries accept() every second while it fails
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        _, err = server.communicate(timeout=30)
    log = err.decode(errors="replace")
    accept_lines = [line for line in log.splitlines() if "accept" in line]
    assert 1 <= len(accept_lines) <= 2, log[-3000:]
    assert "Traceback" not in log
