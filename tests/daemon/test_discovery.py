"""mDNS discovery on loopback (python-zeroconf bound to 127.0.0.1), join requests the
server's operator approves, and announcements that are refused."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from zeroconf.asyncio import AsyncServiceInfo

from appliance.config import merge, validate
from appliance.daemon import Daemon
from appliance.discovery import (
    KIT_TYPE,
    SERVER_TYPE,
    Discovery,
    DiscoveryError,
    FoundServer,
    Pinned,
    kit_from,
    server_from,
)
from appliance.server import SessionServer
from appliance.tls import CERT_FILE, TLS_DIR, fingerprint_of
from tests.api.daemon import TOKEN, api_client, running_daemon
from tests.daemons import kit_config
from tests.kits import free_port, running_server

LOOPBACK = ["127.0.0.1"]
FP_A = ":".join(["AB"] * 32)
FP_B = ":".join(["CD"] * 32)
LAN = {"discovery": {"enabled": True, "interfaces": LOOPBACK, "address": "127.0.0.1"}}


def info(kind: str, instance: str, port: int = 8090, **properties: str) -> AsyncServiceInfo:
    return AsyncServiceInfo(
        kind,
        f"{instance}.{kind}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=port,
        properties=properties,
        server=f"{instance}.local.",
    )


# --- announcements are network input -----------------------------------------------------


def test_a_server_announcement_is_checked_field_by_field() -> None:
    good = server_from(info(SERVER_TYPE, "lobby", fp=FP_A.lower()))
    assert good == FoundServer(f"lobby.{SERVER_TYPE}", "https://127.0.0.1:8090", FP_A)
    for bad, why in [
        (info(SERVER_TYPE, "plain"), "fp: missing"),
        (info(SERVER_TYPE, "short", fp="AB:CD"), "not a SHA-256"),
        (info(SERVER_TYPE, "junk", fp=FP_A + "\n"), "control characters"),
    ]:
        with pytest.raises(DiscoveryError, match=why):
            server_from(bad)


def test_a_kit_announcement_is_checked_field_by_field() -> None:
    kit = kit_from(
        info(KIT_TYPE, "room-b", uid="room-b", name="Room B", api="http://10.0.0.2:8080")
    )
    assert (kit.uid, kit.name, kit.api, kit.fingerprint) == (
        "room-b",
        "Room B",
        "http://10.0.0.2:8080",
        None,
    )
    with pytest.raises(DiscoveryError, match="uid"):
        kit_from(info(KIT_TYPE, "x", uid="../etc", api="http://10.0.0.2:8080"))
    with pytest.raises(DiscoveryError, match="api"):
        kit_from(info(KIT_TYPE, "x", uid="x", api="javascript:alert(1)"))


# --- on loopback ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def discovery() -> AsyncIterator[Discovery]:
    lan = Discovery(LOOPBACK)
    try:
        yield lan
    finally:
        await lan.close()


async def test_a_spoofed_announcement_with_another_fingerprint_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.discovery")
    pinned = Pinned(f"lobby.{SERVER_TYPE}", FP_A, "https://127.0.0.1:8090")
    async with discovery() as spoof, discovery() as kit:
        await spoof.announce_server("lobby", "127.0.0.1", 9999, FP_B)
        with pytest.raises(TimeoutError):
            await kit.find_server(3.0, pinned)
        assert "refused" in caplog.text and FP_B in caplog.text
        async with discovery() as real:
            await real.announce_server("lobby-real", "127.0.0.1", 8090, FP_A)
            found = await kit.find_server(5.0, pinned)
        assert (found.fingerprint, found.url) == (FP_A, "https://127.0.0.1:8090")


async def test_a_server_without_a_fingerprint_is_never_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.discovery")
    async with discovery() as plain, discovery() as kit:
        await plain.start()
        await plain._announce(SERVER_TYPE, "plain", "127.0.0.1", 8090, {"v": "1"})
        with pytest.raises(TimeoutError):
            await kit.find_server(3.0)
        assert "fp: missing" in caplog.text


# --- join requests --------------------------------------------------------------------


async def test_a_kit_without_discovery_lists_no_lan_kits(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon, api_client(daemon) as api:
        assert await api.ok("GET", "/discovery/kits") == {"enabled": False, "kits": []}


async def test_join_requests_wait_for_the_operator(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        base = server.url + "/v1/join-requests"
        admin = {"Authorization": f"Bearer {server.admin_key}"}

        async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
            async with http.request(method, url, **kwargs) as response:
                return response.status, await response.json(content_type=None)

        status, filed = await call("POST", base, json={"uid": "room-b", "name": "Room B"})
        assert status == 202 and filed["status"] == "pending"
        mine = {"Authorization": f"Bearer {filed['secret']}"}
        # Nothing is trusted because it asked: no user yet, and only the admin sees the list.
        assert await server.store.user("room-b") is None
        assert (await call("GET", base))[0] == 401
        assert (await call("GET", base, headers={"Authorization": "Bearer nope"}))[0] == 403
        status, listed = await call("GET", base, headers=admin)
        assert [r["uid"] for r in listed["requests"]] == ["room-b"]
        assert "secret" not in listed["requests"][0]
        assert (await call("POST", base, json={"uid": "room-b", "name": "Again"}))[0] == 409
        status, polled = await call("GET", f"{base}/{filed['id']}", headers=mine)
        assert polled == {"id": filed["id"], "status": "pending"}
        wrong = {"Authorization": "Bearer not-the-secret"}
        assert (await call("GET", f"{base}/{filed['id']}", headers=wrong))[0] == 404
        assert (await call("POST", f"{base}/{filed['id']}/approve"))[0] == 401
        status, approved = await call("POST", f"{base}/{filed['id']}/approve", headers=admin)
        assert status == 200 and approved["status"] == "approved"
        status, polled = await call("GET", f"{base}/{filed['id']}", headers=mine)
        token = polled["auth_token"]
        assert (await server.store.user_by_token(token)) is not None
        assert (await call("GET", f"{base}/{filed['id']}", headers=mine))[0] == 404  # once
        # A known user cannot ask again; bad input is refused, naming the field.
        assert (await call("POST", base, json={"uid": "room-b", "name": "B"}))[0] == 409
        status, error = await call("POST", base, json={"uid": "x y", "name": "X"})
        assert status == 422 and "uid" in error["error"]["message"]
        assert (await call("GET", f"{base}/%C2%B2", headers=mine))[0] == 422
        status, other = await call("POST", base, json={"uid": "room-c", "name": "Room C"})
        status, _ = await call("POST", f"{base}/{other['id']}/reject", headers=admin)
        assert status == 200
        secret = {"Authorization": f"Bearer {other['secret']}"}
        assert (await call("GET", f"{base}/{other['id']}", headers=secret))[1][
            "status"
        ] == "rejected"
        assert await server.store.user("room-c") is None


# --- two daemons ----------------------------------------------------------------------


def host_config(tmp: Path) -> dict[str, Any]:
    lan = {**LAN, "server": {"tls": {"enabled": True}}, "api": {"token": TOKEN}}
    return merge(kit_config(tmp, "room-a", 400), lan)


def guest_config(tmp: Path) -> dict[str, Any]:
    config = kit_config(tmp, "room-b", 650, embedded=False)
    # Generous: a busy machine answers slowly; the join is approved as soon as it is filed.
    config["discovery"] = {**LAN["discovery"], "wait": 60.0, "approval_wait": 60.0}
    return config


async def approve(server: SessionServer, uid: str) -> None:
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    base = server.url + "/v1/join-requests"
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            async with http.get(base, headers=admin, ssl=False) as response:
                pending = (await response.json())["requests"]
            mine = [r for r in pending if r["uid"] == uid]
            if mine:
                async with http.post(
                    f"{base}/{mine[0]['id']}/approve", headers=admin, ssl=False
                ) as response:
                    assert response.status == 200
                return
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_kit_without_a_server_url_finds_pins_and_joins_once_approved(
    tmp_path: Path,
) -> None:
    host = Daemon(validate(host_config(tmp_path)))
    await host.start()
    try:
        assert host.server is not None and host.server.tls is not None
        assert host.lan is not None
        await host.lan.discovery.watch_kits()
        guest = Daemon(validate(guest_config(tmp_path)))
        starting = asyncio.create_task(guest.start())
        try:
            await approve(host.server, "room-b")
            await asyncio.wait_for(starting, 90)  # generous: a busy machine, not a speed test
            assert guest.server_url == host.server.url  # https, the announced address
            assert guest.server_url is not None and guest.server_url.startswith("https://")
            pinned = Pinned.load(tmp_path / "room-b")
            assert pinned is not None and pinned.fingerprint == host.server.tls.fingerprint
            assert guest.calls is not None
            async with asyncio.timeout(30):
                while not guest.calls.connected:
                    await asyncio.sleep(0.05)
            assert guest.compositor is not None
            note = guest.compositor.scene.home.server_note
            assert note is not None and guest.server_url in note
            # The host sees the kit's own announcement (uid, name, API address).
            async with asyncio.timeout(30):
                while not any(k.uid == "room-b" for k in host.lan.discovery.kits.values()):
                    await asyncio.sleep(0.05)
            kit = next(k for k in host.lan.discovery.kits.values() if k.uid == "room-b")
            assert guest.api is not None
            assert kit.name == "Room B" and kit.api == guest.api.url
            assert host.api is not None
            async with api_client(host) as api:
                listed = await api.ok("GET", "/discovery/kits")
            assert listed["enabled"] is True
            assert [k["uid"] for k in listed["kits"]] == ["room-b"]  # not itself
            assert listed["kits"][0]["api"] == guest.api.url
        finally:
            if not starting.done():
                starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            await guest.stop()
    finally:
        await host.stop()


@pytest.mark.slow
async def test_a_standalone_server_announces_itself_with_its_fingerprint(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "server.toml"
    config.write_text(
        f"""
[kit]
uid = "lobby"
[server]
listen = "127.0.0.1:{port}"
[server.tls]
enabled = true
[discovery]
enabled = true
interfaces = ["127.0.0.1"]
[paths]
state = "{state}"
"""
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "server", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with discovery() as kit:
            found = await kit.find_server(30.0)
        digest = fingerprint_of((state / TLS_DIR / CERT_FILE).read_bytes())
        assert found.fingerprint == digest
        assert found.url == f"https://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 20)


async def test_discovery_speaks_on_every_interface_by_default() -> None:
    lan = Discovery()
    try:
        await lan.start()
        assert lan.zeroconf is not None
    finally:
        await lan.close()
