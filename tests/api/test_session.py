"""The session, in-call actions and the ringing flow over REST, against a far kit."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appliance.daemon import Daemon
from tests.api.daemon import Api
from tests.kits import Kit, KitFactory

IDLE_ACTIONS = [
    ("mute-audio", {"muted": True}),
    ("pause-video", {"paused": True}),
    ("switch-camera", None),
    ("audio-mode", {"mode": "SPEAKER"}),
    ("pip", {"enabled": True}),
    ("switch-to-video", None),
    ("recording", {"recording": True}),
]


@pytest.fixture
async def far(kit: Daemon, tmp_path: Path) -> AsyncIterator[Kit]:
    assert kit.server is not None
    factory = KitFactory(kit.server, tmp_path)
    try:
        yield await factory("room-b", controller=True)
    finally:
        await factory.close()


@pytest.mark.parametrize(("action", "body"), IDLE_ACTIONS)
async def test_in_call_actions_when_idle_are_409(
    api: Api, action: str, body: dict[str, Any] | None
) -> None:
    status, reply = await api.call("POST", f"/session/{action}", body)
    assert status == 409
    assert reply == {
        "error": {"code": "no-active-session", "message": "there is no active call session"}
    }
    status, reply = await api.call("DELETE", "/session")
    assert (status, reply["error"]["code"]) == (409, "no-active-session")


@pytest.mark.parametrize(
    ("path", "raw", "status", "field"),
    [
        ("/session/mute-audio", b"{", 400, "body"),
        ("/session/mute-audio", b'"yes"', 422, "body"),
        ("/session/mute-audio", b"{}", 422, "muted"),
        ("/session/mute-audio", b'{"muted": 1}', 422, "muted"),
        ("/session/mute-audio", b'{"muted": true, "loud": 1}', 422, "loud"),
        ("/session/audio-mode", b'{"mode": "LOUD"}', 422, "mode"),
        ("/calls", b'{"receiver": "has space"}', 422, "receiver"),
        ("/calls", b'{"receiver": "room-b", "type": "fax"}', 422, "type"),
        ("/calls", b'{"receiver": "room-a"}', 422, "receiver"),
    ],
)
async def test_bad_bodies_name_the_field(
    api: Api, path: str, raw: bytes, status: int, field: str
) -> None:
    got, reply = await api.call("POST", path, raw=raw)
    assert got == status, reply
    assert reply["error"]["field"] == field


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"mode": "grid"}, "settings.mode"),
        ({"idle_timeout_period": 0}, "settings.idle_timeout_period"),
        ({"is_audio_only": "yes"}, "settings.is_audio_only"),
        ({"volume": 11}, "settings.volume"),
    ],
)
async def test_bad_settings_name_the_setting(
    kit: Daemon, api: Api, settings: dict[str, Any], field: str
) -> None:
    status, reply = await api.call("PUT", "/session", {"session_id": "x", "settings": settings})
    assert status == 422
    assert reply["error"]["field"] == field
    assert kit.calls is not None and kit.calls.session is None


async def test_a_call_driven_over_rest(kit: Daemon, api: Api, far: Kit) -> None:
    assert kit.calls is not None
    view = await api.ok(
        "PUT", "/session", {"session_id": "standup", "settings": {"start_audio_muted": True}}
    )
    assert view["state"] == "active" and view["session_id"] == "standup"
    assert view["local"]["audio_muted"] is True
    status, reply = await api.call("PUT", "/session", {"session_id": "other"})
    assert (status, reply["error"]["code"]) == (409, "session-active")

    await far.join("standup")
    await far.wait_for("onUserJoined", lambda d: d["uid"] == "room-a")
    view = await api.ok("POST", "/session/mute-audio", {"muted": False})
    tone = kit.hardware.microphone.tone_hz  # type: ignore[union-attr]
    await far.wait_to_hear(tone, timeout=20)
    view = await api.ok("GET", "/session")
    assert [p["uid"] for p in view["participants"]] == ["room-a", "room-b"]

    view = await api.ok("POST", "/session/pause-video", {"paused": True})
    assert view["local"]["video_paused"] is True
    await far.wait_for("onUserVideoPaused", lambda d: d["user"]["uid"] == "room-a")
    view = await api.ok("POST", "/session/pip", {"enabled": True})
    assert view["local"]["pip"] is True
    view = await api.ok("POST", "/session/audio-mode", {"mode": "EARPIECE"})
    assert view["local"]["audio_mode"] == "EARPIECE"
    status, reply = await api.call("POST", "/session/audio-mode", {"mode": "BLUETOOTH"})
    assert (status, reply["error"]["code"]) == (409, "audio-mode-unavailable")
    status, reply = await api.call("POST", "/session/switch-to-video")
    assert (status, reply["error"]["code"]) == (409, "not-audio-only")

    view = await api.ok("DELETE", "/session")
    assert view["state"] == "idle"
    await far.wait_for("onUserLeft", lambda d: d["uid"] == "room-a")


async def test_ringing_over_rest(kit: Daemon, api: Api, far: Kit) -> None:
    assert far.controller is not None
    call = await api.ok("POST", "/calls", {"receiver": "room-b", "type": "audio"})
    assert call["status"] == "initiated" and call["receiver"]["uid"] == "room-b"
    await far.wait_for("onIncomingCallReceived")
    ringing = await api.ok("GET", "/calls")
    assert [c["session_id"] for c in ringing["calls"]] == [call["session_id"]]
    status, reply = await api.call("POST", f"/calls/{call['session_id']}/reject")
    assert (status, reply["error"]["code"]) == (409, "no-ringing-call")  # ours: cancel it
    cancelled = await api.ok("POST", f"/calls/{call['session_id']}/cancel")
    assert cancelled["status"] == "cancelled"
    await far.wait_for("onIncomingCallCancelled")

    # The far kit rings us; we accept over REST and the call starts.
    incoming = await far.calls.initiate_call("room-a", "video")
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        while not (await api.ok("GET", "/calls"))["calls"]:
            await asyncio.sleep(0.05)
    accepted = await api.ok("POST", f"/calls/{incoming.session_id}/accept")
    assert accepted["status"] == "ongoing"
    view = await api.ok("GET", "/session")
    assert view["state"] == "active" and view["session_id"] == incoming.session_id

    await api.ok("DELETE", "/session")
    log = await api.ok("GET", "/call-log?limit=5")
    assert [c["status"] for c in log["calls"]][:2] == ["ended", "cancelled"]
    status, reply = await api.call("GET", "/call-log?limit=0")
    assert (status, reply["error"]["field"]) == (422, "limit")


async def test_events_websocket_carries_every_event(kit: Daemon, api: Api, far: Kit) -> None:
    assert kit.api is not None
    ws = await api.http.ws_connect(kit.api.url + "/api/v1/events", headers=api.headers())
    await api.ok("PUT", "/session", {"session_id": "events"})
    await far.join("events")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while not any(e["event"] == "onUserJoined" for e in seen):
            seen.append(await ws.receive_json())
    joined = next(e for e in seen if e["event"] == "onUserJoined")
    assert joined["data"]["uid"] == "room-b" and joined["data"]["name"] == "Room B"
    await api.ok("POST", "/session/mute-audio", {"muted": True})
    async with asyncio.timeout(10):
        while (event := await ws.receive_json())["event"] != "onUserMuted":
            pass
    assert event["data"]["is_muted"] is True and event["data"]["muted"]["uid"] == "room-a"
    await ws.close()


async def test_kits_lists_who_can_be_called_and_an_offline_one_fails_at_once(
    kit: Daemon, api: Api, far: Kit
) -> None:
    assert kit.server is not None
    await kit.server.create_user("porch", "Porch")  # known, never connected
    listed = await api.ok("GET", "/kits")
    assert listed == {
        "kits": [
            {"uid": "room-b", "name": "Room B", "online": True},
            {"uid": "porch", "name": "Porch", "online": False},
        ]
    }
    started = asyncio.get_running_loop().time()
    status, reply = await api.call("POST", "/calls", {"receiver": "porch"})
    assert asyncio.get_running_loop().time() - started < 2  # not the 45 s ring timeout
    assert (status, reply["error"]["code"]) == (409, "receiver-offline")
    assert reply["error"]["message"].startswith("Porch (porch) is offline")
    assert (await api.ok("GET", "/session"))["state"] == "idle"


async def test_kits_take_only_what_parses_from_the_session_server(
    kit: Daemon, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session server's answer is checked entry by entry: entries that are not a
    user (wrong types, a uid with a path in it, a huge name) are left out, never a 500."""
    assert kit.api is not None
    answer: list[Any] = [
        {"uid": "porch", "name": "Porch", "online": False, "avatar": None},
        {"uid": "../etc", "name": "Bad", "online": True},
        {"uid": "big", "name": "x" * 10_000, "online": True},
        {"uid": "odd", "name": "Odd", "online": "yes"},
        {"uid": 7, "name": "Seven", "online": True},
        {"name": "No uid", "online": True},
    ]

    async def users(auth_token: str) -> list[Any]:
        return answer

    monkeypatch.setattr(kit.api.records._server_api, "users", users)
    assert await api.ok("GET", "/kits") == {
        "kits": [{"uid": "porch", "name": "Porch", "online": False}]
    }
