"""`callbox users add` on a kit whose embedded session server serves TLS with its own
self-signed certificate (a kit's first-boot default): it trusts that certificate, as the
kit does, and the token it prints signs in."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from appliance.tls import CERT_FILE, TLS_DIR, fingerprint_of, parse_fingerprint
from tests.kits import free_port


async def callbox(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return await proc.wait(), out.decode(), err.decode()


async def test_users_add_reaches_the_kits_own_tls_server(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "callbox.toml"
    config.write_text(
        f"""
[kit]
uid = "room-a"
name = "Room A"
[server]
listen = "127.0.0.1:{port}"
url = "https://127.0.0.1:{port}"
[server.tls]
enabled = true
[api]
listen = "127.0.0.1:0"
[hal]
backend = "fake"
[paths]
state = "{state}"
"""
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert daemon.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"is ready" not in (line := await daemon.stdout.readline()):
                assert line, "callbox run exited early"
        code, out, err = await callbox(
            "users", "add", "room-b", "--name", "Room B", "--config", str(config)
        )
        assert code == 0, err
        token = out.strip()
        assert len(token) >= 16
        # The token signs in, over wss checked against the kit's own certificate.
        digest = fingerprint_of((state / TLS_DIR / CERT_FILE).read_bytes())
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                f"wss://127.0.0.1:{port}/v1/ws", ssl=aiohttp.Fingerprint(parse_fingerprint(digest))
            )
            await ws.send_json({"type": "hello", "auth_token": token, "id": 1})
            welcome = await ws.receive_json(timeout=10)
            assert welcome["type"] == "welcome" and welcome["uid"] == "room-b"
            await ws.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        await asyncio.wait_for(daemon.wait(), 30)
