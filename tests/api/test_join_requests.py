"""Kits asking to join a kit's session server: listed, approved and rejected through the
kit's REST API (what the control page's "Asking to join" card uses)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from appliance.daemon import Daemon
from tests.api.daemon import Api, api_client, running_daemon


async def ask_to_join(server_url: str, uid: str, name: str) -> tuple[int, str]:
    """What a kit that found the server on the LAN does: (request id, its poll secret)."""
    async with aiohttp.ClientSession() as http:
        body = {"uid": uid, "name": name, "fingerprint": "ab" * 32}
        async with http.post(f"{server_url}/v1/join-requests", json=body) as response:
            assert response.status == 202, await response.text()
            reply = await response.json()
    return reply["id"], reply["secret"]


async def poll(server_url: str, request_id: int, secret: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server_url}/v1/join-requests/{request_id}",
            headers={"Authorization": f"Bearer {secret}"},
        ) as response,
    ):
        reply: dict[str, object] = await response.json()
        return reply


async def test_the_operator_lists_approves_and_rejects_kits_asking_to_join(
    kit: Daemon, api: Api
) -> None:
    assert kit.server is not None
    url = kit.server.url
    porch, porch_secret = await ask_to_join(url, "porch", "Porch")
    attic, _ = await ask_to_join(url, "attic", "Attic")

    listed = await api.ok("GET", "/join-requests")
    assert listed["hosted"] is True
    assert [(r["id"], r["uid"], r["name"], r["status"]) for r in listed["requests"]] == [
        (porch, "porch", "Porch", "pending"),
        (attic, "attic", "Attic", "pending"),
    ]
    assert listed["requests"][0]["fingerprint"] == "ab" * 32

    approved = await api.ok("POST", f"/join-requests/{porch}/approve")
    assert (approved["uid"], approved["status"]) == ("porch", "approved")
    # The asking kit's poll hands it its auth token; it is a user the kit list shows.
    handed = await poll(url, porch, porch_secret)
    assert handed["status"] == "approved" and isinstance(handed["auth_token"], str)
    assert await kit.server.store.user("porch") is not None
    kits = await api.ok("GET", "/kits")
    assert {"uid": "porch", "name": "Porch", "online": False} in kits["kits"]

    rejected = await api.ok("POST", f"/join-requests/{attic}/reject")
    assert rejected["status"] == "rejected"
    assert await kit.server.store.user("attic") is None
    assert (await api.ok("GET", "/join-requests"))["requests"] == []

    status, reply = await api.call("POST", f"/join-requests/{attic}/approve")
    assert (status, reply["error"]["code"]) == (409, "already-decided")
    status, reply = await api.call("POST", "/join-requests/999/approve")
    assert (status, reply["error"]["code"]) == (404, "unknown-request")
    status, reply = await api.call("POST", "/join-requests/zero/reject")
    assert (status, reply["error"]["field"]) == (422, "id")
    status, _ = await api.call("GET", "/join-requests", token="not-the-token")
    assert status == 401


async def test_a_kit_that_does_not_host_its_server_has_no_requests_to_decide(
    kit: Daemon, tmp_path: Path
) -> None:
    assert kit.server is not None
    token = await kit.server.create_user("room-b", "Room B")
    server = {"embedded": False, "url": kit.server.url, "auth_token": token}
    async with (
        running_daemon(tmp_path, "room-b", server=server) as other,
        api_client(other) as api,
    ):
        assert await api.ok("GET", "/join-requests") == {"hosted": False, "requests": []}
        status, reply = await api.call("POST", "/join-requests/1/approve")
        assert (status, reply["error"]["code"]) == (404, "no-session-server")
