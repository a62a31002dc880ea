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
import pytest

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


async def test_users_list_remove_and_reset_token(tmp_path: Path) -> None:
    from appliance.signaling.client import SignalingClient, SignalingError
    from tests.kits import running_server

    admin_key = "k" * 32
    async with running_server(tmp_path, admin_key=admin_key) as server:
        config = tmp_path / "callbox.toml"
        config.write_text(
            f'[server]\nembedded = false\nurl = "{server.url}"\nadmin_key = "{admin_key}"\n'
            f'[paths]\nstate = "{tmp_path / "state"}"\n'
        )
        args = ("--config", str(config))
        code, out, err = await callbox("users", "add", "room-b", "--name", "Room B", *args)
        assert code == 0, err
        old_token = out.strip()
        await server.create_user("lobby", "Lobby \x1b[2J")  # a name no terminal should obey
        online = SignalingClient(server.url, old_token, uid="room-b")
        await online.connect(timeout=5)

        code, out, err = await callbox("users", "list", *args)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["UID", "STATUS", "NAME"]
        assert lines[1].split() == ["lobby", "offline", "Lobby", "?[2J"]
        assert lines[2].split() == ["room-b", "online", "Room", "B"]

        # A new token: the old one stops working and its connection is closed.
        code, out, err = await callbox("users", "reset-token", "room-b", *args)
        assert code == 0, err
        new_token = out.strip()
        assert len(new_token) >= 16 and new_token != old_token
        async with asyncio.timeout(5):
            while online.connected:
                await asyncio.sleep(0.02)
        await online.close()
        with pytest.raises(SignalingError, match="unauthorized"):
            await SignalingClient(server.url, old_token).connect(timeout=5)
        client = SignalingClient(server.url, new_token, uid="room-b")
        await client.connect(timeout=5)

        code, out, err = await callbox("users", "remove", "room-b", *args)
        assert (code, out.strip()) == (0, "removed room-b"), err
        async with asyncio.timeout(5):
            while client.connected:
                await asyncio.sleep(0.02)
        await client.close()
        code, out, err = await callbox("users", "list", *args)
        assert "room-b" not in out

        for command in ("remove", "reset-token"):
            code, out, err = await callbox("users", command, "room-b", *args)
            assert code == 1 and "unknown-user: no user 'room-b'" in err, err
        code, out, err = await callbox("users", "remove", "bad/uid", *args)
        assert code == 1 and "bad-request: uid:" in err, err

        config.write_text(config.read_text().replace(admin_key, "x" * 32))
        code, out, err = await callbox("users", "list", *args)
        assert code == 1 and "forbidden: listing users needs the admin key" in err, err
        code, out, err = await callbox("users", "reset-token", "lobby", *args)
        assert code == 1 and "forbidden: resetting a user's token needs the admin key" in err
