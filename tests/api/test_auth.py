"""The bearer token: required everywhere but health and the document, made on first start
and kept hashed, compared in constant time, rotatable."""

import hashlib
import logging
import re
from pathlib import Path

import aiohttp
import pytest

from appliance.api.auth import TOKEN_FILE
from appliance.daemon import Daemon
from tests.api.daemon import Api, api_client, running_daemon


async def test_no_token_and_wrong_token_are_refused(api: Api) -> None:
    for token in ("", "wrong-token-0123456789"):
        async with api.http.get(
            api.base + "/api/v1/session",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        ) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.json()
            assert body["error"]["code"] == "unauthorized"
    status, body = await api.call("POST", "/session/mute-audio", {"muted": True}, token="nope")
    assert status == 401  # auth is checked before the body or the state


async def test_health_and_document_need_no_token(api: Api) -> None:
    async with api.http.get(api.base + "/api/v1/health") as response:
        health = await response.json()
        assert response.status == 200
    # Every kind the registry builds, each fake here (backend = "fake").
    assert {"camera", "audio", "bluetooth", "buttons", "display"} <= set(health["hardware"])
    assert set(health["hardware"].values()) == {"fake"}
    async with api.http.get(api.base + "/api/v1/openapi.json") as response:
        assert response.status == 200
        assert (await response.json())["openapi"].startswith("3.1")


async def test_first_start_makes_a_token_logs_it_and_keeps_only_its_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.api.auth")
    async with running_daemon(tmp_path, api={"token": None}) as kit:
        logged = re.search(r"API token created.*: (\S+)$", caplog.text, re.MULTILINE)
        assert logged is not None
        token = logged.group(1)
        assert kit.api is not None and kit.api.tokens.fresh_token == token
        stored = (tmp_path / "room-a" / TOKEN_FILE).read_text().strip()
        assert stored == hashlib.sha256(token.encode()).hexdigest()
        assert token not in stored
        async with api_client(kit, token) as api:
            assert (await api.call("GET", "/session"))[0] == 200

            status, rotated = await api.call("POST", "/token/rotate")
            assert status == 200
            new = rotated["token"]
            assert new != token
            assert (await api.call("GET", "/session"))[0] == 401  # the old one, at once
            assert (await api.call("GET", "/session", token=new))[0] == 200

    caplog.clear()
    async with running_daemon(tmp_path, api={"token": None}) as kit:  # the same state dir
        assert "API token created" not in caplog.text
        assert kit.api is not None and kit.api.tokens.fresh_token is None
        async with api_client(kit, new) as api:
            assert (await api.call("GET", "/session"))[0] == 200
            assert (await api.call("GET", "/session", token=token))[0] == 401


async def test_a_token_fixed_in_the_config_cannot_be_rotated(api: Api) -> None:
    status, body = await api.call("POST", "/token/rotate")
    assert status == 409
    assert body["error"]["code"] == "token-fixed"
    assert (await api.call("GET", "/session"))[0] == 200


async def test_events_websocket_takes_the_token_as_a_subprotocol(kit: Daemon, api: Api) -> None:
    assert kit.api is not None
    url = kit.api.url + "/api/v1/events"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.http.ws_connect(url)
    assert refused.value.status == 401
    ws = await api.http.ws_connect(url, protocols=("callbox", f"bearer.{api.token}"))
    assert ws.protocol == "callbox"
    await api.ok("PUT", "/session", {"session_id": "ws-check"})
    event = await ws.receive_json(timeout=10)
    assert event["event"] == "onSessionStateChanged"
    assert set(event) == {"event", "data", "ts"}
    await ws.close()
