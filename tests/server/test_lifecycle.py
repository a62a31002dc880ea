"""Starting and stopping: the admin key, what survives a restart, and a clean stop."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp

from appliance.config import ServerConfig
from appliance.server import SessionServer
from appliance.signaling.client import SignalingClient
from appliance.signaling.messages import CallInitiate, CallReply
from tests.server.conftest import Kit, KitFactory, ServerFactory


async def test_admin_key_is_generated_once_and_written_beside_the_database(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    database = tmp_path / "state" / "server.db"
    first = await make_server(database)
    key_file = database.parent / "admin.key"
    assert key_file.read_text().strip() == first.admin_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.admin_key
    await first.stop()

    second = await make_server(database)
    assert second.admin_key == key


async def test_configured_admin_key_wins(make_server: ServerFactory, tmp_path: Path) -> None:
    server = await make_server(tmp_path / "db.sqlite", admin_key="k" * 32)
    assert server.admin_key == "k" * 32
    assert not (tmp_path / "admin.key").exists()


async def test_in_memory_database_writes_no_files(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server(":memory:")
    token = await server.create_user("alice", "Alice")
    assert len(server.admin_key) >= 32 and token
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_port_zero_gives_a_real_url(make_server: ServerFactory) -> None:
    server = await make_server(":memory:")
    assert server.url.startswith("http://127.0.0.1:")
    assert int(server.url.rsplit(":", 1)[1]) > 0


async def test_calls_interrupted_by_a_restart_are_closed(
    make_server: ServerFactory, make_kit: KitFactory, tmp_path: Path
) -> None:
    database = tmp_path / "kept.db"
    first = await make_server(database)
    alice, bob = await make_kit("alice", on=first), await make_kit("bob", on=first)
    reply = await alice.request(CallInitiate(type="call-initiate", receiver="bob"))
    assert isinstance(reply, CallReply)
    await first.stop()

    second = await make_server(database)
    again = Kit(second, "alice", alice.auth_token)  # the same auth token still works
    try:
        (logged,) = await again.api.calls(again.auth_token)
    finally:
        await again.close()
    assert (logged.session_id, logged.status) == (reply.call.session_id, "unanswered")
    assert logged.ended_at is not None
    await bob.close()


async def test_stop_closes_sockets_and_leaves_no_tasks(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    server = SessionServer(
        ServerConfig(listen="127.0.0.1:0", reconnect_grace=30, ring_timeout=30),
        tmp_path / "db",
    )
    await server.start()
    alice_token = await server.create_user("alice", "Alice")
    bob_token = await server.create_user("bob", "Bob")
    closed: list[str] = []
    clients = []
    for uid, token in (("alice", alice_token), ("bob", bob_token)):
        client = SignalingClient(server.url, token)
        client.on_close(lambda uid=uid: closed.append(uid))  # type: ignore[misc]
        await client.connect()
        clients.append(client)
    # A ringing call and a raw socket that is only listening.
    await clients[0].request(CallInitiate(type="call-initiate", receiver="bob"))
    async with aiohttp.ClientSession() as http:
        raw = await http.ws_connect(server.url + "/v1/ws")
        await raw.send_json({"type": "hello", "auth_token": alice_token})
        assert (await raw.receive_json())["type"] == "welcome"

        await asyncio.wait_for(server.stop(), 10)

        closing = await raw.receive(timeout=3)
        assert (closing.type, closing.data) == (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSCloseCode.GOING_AWAY,
        )
    for _ in range(50):  # the clients' own tasks wind down after the close
        if sorted(closed) == ["alice", "bob"]:
            break
        await asyncio.sleep(0.01)
    assert sorted(closed) == ["alice", "bob"]
    assert [c.connected for c in clients] == [False, False]
    for client in clients:
        await client.close()
    assert asyncio.all_tasks() == before  # only this test's own task is left
