"""The HTTP side: health, users (admin key), call tokens, the call log, and refusals."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt
import pytest

from appliance import __version__
from appliance.server import SessionServer, UnknownUser, UserExists
from appliance.signaling.client import ServerApi, SignalingClient, SignalingError
from tests.server.conftest import KitFactory


async def fetch(
    server: SessionServer,
    method: str,
    path: str,
    *,
    bearer: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, headers=headers, json=body, data=raw) as response,
    ):
        return response.status, await response.json()


async def test_health(server: SessionServer) -> None:
    assert await fetch(server, "GET", "/v1/health") == (200, {"ok": True, "version": __version__})


async def test_users_are_created_with_the_admin_key(server: SessionServer) -> None:
    status, body = await fetch(
        server,
        "POST",
        "/v1/users",
        bearer=server.admin_key,
        body={"uid": "room-a", "name": "Room A", "avatar": "https://example.org/a.png"},
    )
    assert status == 201
    assert (body["uid"], body["name"]) == ("room-a", "Room A")
    token = body["auth_token"]
    assert len(token) >= 40

    status, body = await fetch(server, "GET", "/v1/users", bearer=token)
    assert (status, body) == (
        200,
        {
            "users": [
                {
                    "uid": "room-a",
                    "name": "Room A",
                    "avatar": "https://example.org/a.png",
                    "online": False,
                }
            ]
        },
    )

    status, body = await fetch(
        server, "POST", "/v1/users", bearer=server.admin_key, body={"uid": "room-a", "name": "X"}
    )
    assert (status, body["error"]["code"]) == (409, "user-exists")


async def test_admin_key_is_required(server: SessionServer) -> None:
    user_token = await server.create_user("alice", "Alice")
    new = {"uid": "mallory", "name": "Mallory"}
    status, body = await fetch(server, "POST", "/v1/users", body=new)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    for wrong in (user_token, "not-the-key", server.admin_key + "x"):
        status, body = await fetch(server, "POST", "/v1/users", bearer=wrong, body=new)
        assert (status, body["error"]["code"]) == (403, "forbidden")
    assert [u.uid for u in await server.store.users()] == ["alice"]


async def test_auth_token_is_required_and_only_its_hash_is_kept(server: SessionServer) -> None:
    token = await server.create_user("alice", "Alice")
    for bearer in (None, "", "wrong", server.admin_key):
        status, body = await fetch(server, "GET", "/v1/users", bearer=bearer)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = await fetch(
        server, "POST", "/v1/tokens", bearer="wrong", body={"session_id": "s"}
    )
    assert status == 401

    def stored(db: Any) -> list[Any]:
        return list(db.execute("SELECT * FROM users").fetchall())

    rows = await server.store._run(stored)
    assert token not in repr(rows)


async def test_rotating_the_auth_token(server: SessionServer) -> None:
    old = await server.create_user("alice", "Alice")
    new = await server.rotate_auth_token("alice")
    assert new != old
    assert (await fetch(server, "GET", "/v1/users", bearer=old))[0] == 401
    assert (await fetch(server, "GET", "/v1/users", bearer=new))[0] == 200
    with pytest.raises(UnknownUser):
        await server.rotate_auth_token("nobody")
    with pytest.raises(UserExists):
        await server.create_user("alice", "Again")


async def test_call_tokens(server: SessionServer) -> None:
    token = await server.create_user("alice", "Alice")
    before = time.time()
    status, body = await fetch(
        server, "POST", "/v1/tokens", bearer=token, body={"session_id": "room-7"}
    )
    assert status == 200
    assert (body["session_id"], body["uid"]) == ("room-7", "alice")
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    assert (claims["sub"], claims["sid"]) == ("alice", "room-7")
    assert before <= claims["iat"] <= time.time()
    assert claims["exp"] == pytest.approx(claims["iat"] + server.config.token_ttl)
    assert body["expires_at"] == pytest.approx(claims["exp"])
    assert claims["jti"]

    api = ServerApi(server.url)
    try:
        issued = await api.create_token(token, "room-7")
    finally:
        await api.close()
    assert (issued.session_id, issued.uid) == ("room-7", "alice")
    assert issued.token != body["token"]  # a fresh jti each time


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 422, "body"),
        (b"{}", 422, "session_id"),
        (b'{"session_id": "has spaces"}', 422, "session_id"),
        (b'{"session_id": "s", "extra": 1}', 422, "extra"),
        (b'{"session_id": 5}', 422, "session_id"),
        (b"[" * 50_000, 400, "body"),  # nested past the JSON parser's recursion limit
    ],
)
async def test_token_requests_that_do_not_validate(
    server: SessionServer, raw: bytes, status: int, field: str
) -> None:
    token = await server.create_user("alice", "Alice")
    got, body = await fetch(server, "POST", "/v1/tokens", bearer=token, raw=raw)
    assert got == status
    assert body["error"]["code"] == "bad-request"
    assert body["error"]["message"].startswith(field)


async def test_new_users_that_do_not_validate(server: SessionServer) -> None:
    for body, field in [
        ({"uid": "bad uid", "name": "X"}, "uid"),
        ({"uid": "ok"}, "name"),
        ({"uid": "ok", "name": ""}, "name"),
        ({"uid": "ok", "name": "X", "admin": True}, "admin"),
    ]:
        status, answer = await fetch(
            server, "POST", "/v1/users", bearer=server.admin_key, body=body
        )
        assert (status, answer["error"]["code"]) == (422, "bad-request")
        assert answer["error"]["message"].startswith(field)


async def test_no_500_for_odd_requests(server: SessionServer) -> None:
    token = await server.create_user("alice", "Alice")
    assert (await fetch(server, "GET", "/v1/nowhere"))[1]["error"]["code"] == "not-found"
    status, body = await fetch(server, "DELETE", "/v1/users", bearer=token)
    assert (status, body["error"]["code"]) == (405, "method-not-allowed")
    status, body = await fetch(server, "GET", "/v1/ws")
    assert (status, body["error"]["code"]) == (400, "bad-request")
    for limit in ("0", "-1", "abc", "²", "100000"):
        status, body = await fetch(server, "GET", f"/v1/calls?limit={limit}", bearer=token)
        assert (status, body["error"]["code"]) == (422, "bad-request")
        assert body["error"]["message"].startswith("limit")
    status, body = await fetch(server, "POST", "/v1/tokens", bearer=token, raw=b"x" * (70 * 1024))
    assert status == 413 and "error" in body


async def test_client_side_refusals_carry_the_code(
    server: SessionServer, make_kit: KitFactory
) -> None:
    api = ServerApi(server.url)
    try:
        with pytest.raises(SignalingError) as refused:
            await api.create_token("wrong", "s")
        assert refused.value.code == "unauthorized"
        with pytest.raises(SignalingError) as refused:
            await api.add_user("wrong-key", "bob", "Bob")
        assert refused.value.code == "forbidden"
        token = await api.add_user(server.admin_key, "bob", "Bob", "b.png")
        users = await api.users(token)
        assert users == [{"uid": "bob", "name": "Bob", "avatar": "b.png", "online": False}]
    finally:
        await api.close()

    client = SignalingClient(server.url, "not-a-token")
    with pytest.raises(SignalingError) as refused:
        await client.connect()
    assert refused.value.code == "unauthorized"
    assert client.connected is False
    await client.close()

    carol = await make_kit("carol")
    online = {u["uid"]: u["online"] for u in await carol.api.users(carol.auth_token)}
    assert online == {"bob": False, "carol": True}


async def test_unreachable_server_is_a_connection_error() -> None:
    api = ServerApi("http://127.0.0.1:9")
    try:
        with pytest.raises(ConnectionError):
            await api.create_token("t", "s")
    finally:
        await api.close()
    client = SignalingClient("http://127.0.0.1:9", "t")
    with pytest.raises(aiohttp.ClientConnectorError):
        await client.connect(timeout=2)
    await client.close()


async def test_an_auth_token_is_bound_to_its_uid(server: SessionServer) -> None:
    """A kit that says it is room-b but brings room-a's token is refused, saying whose
    token it is; with its own uid (or none, as a guest's browser says) it is welcomed."""
    token = await server.create_user("room-a", "Room A")
    await server.create_user("room-b", "Room B")
    posing = SignalingClient(server.url, token, uid="room-b")
    with pytest.raises(SignalingError) as refused:
        await posing.connect(timeout=5)
    assert refused.value.code == "uid-mismatch"
    assert "'room-a'" in refused.value.message and "'room-b'" in refused.value.message
    assert posing.connected is False
    await posing.close()
    for uid in ("room-a", None):
        client = SignalingClient(server.url, token, uid=uid)
        welcome = await client.connect(timeout=5)
        assert welcome.uid == "room-a"
        await client.close()
