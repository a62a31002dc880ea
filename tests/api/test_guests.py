"""Invites: a code buys a guest's tokens once; the signaling proxy lets only guests in."""

import time
from types import SimpleNamespace

import aiohttp
import pytest

from appliance.daemon import Daemon
from tests.api.daemon import Api


async def test_a_meeting_link_made_before_the_call_starts_it_and_can_be_used_again(
    kit: Daemon, api: Api
) -> None:
    """A link made while idle names a new session; the first guest to open it finds the
    kit there. Several guests use it while it is valid, and after the call ended (the
    kit alone with a guest who left) the same link starts it again."""
    assert kit.calls is not None
    invite = await api.ok("POST", "/invites", {"uses": 3})
    assert invite["session_id"].startswith("meet-")
    assert (await api.ok("GET", "/session"))["state"] == "idle"  # nothing starts yet

    ann = await api.ok("POST", "/join", {"code": invite["code"], "name": "Ann"})
    view = await api.ok("GET", "/session")
    assert (view["state"], view["session_id"]) == ("active", invite["session_id"])
    bo = await api.ok("POST", "/join", {"code": invite["code"], "name": "Bo"})
    assert bo["session_id"] == ann["session_id"] == invite["session_id"]

    await api.ok("DELETE", "/session")  # the call ended
    again = await api.ok("POST", "/join", {"code": invite["code"], "name": "Ann"})
    assert again["session_id"] == invite["session_id"]
    view = await api.ok("GET", "/session")
    assert (view["state"], view["session_id"]) == ("active", invite["session_id"])
    status, used_up = await api.call("POST", "/join", {"code": invite["code"]}, token="")
    assert (status, used_up["error"]["code"]) == (404, "invite-invalid")


async def test_a_code_works_once_and_names_the_session(kit: Daemon, api: Api) -> None:
    await api.ok("PUT", "/session", {"session_id": "town-hall"})
    invite = await api.ok("POST", "/invites", {"ttl": 600})
    assert invite["session_id"] == "town-hall" and invite["uses_left"] == 1
    assert invite["url"] == f"/join/{invite['code']}"
    assert invite["expires_at"] == pytest.approx(time.time() + 600, abs=5)

    status, guest = await api.call(
        "POST", "/join", {"code": invite["code"], "name": "Ann"}, token=""
    )
    assert status == 200, guest
    assert guest["uid"].startswith("guest-") and guest["name"] == "Ann"
    assert guest["session_id"] == "town-hall" and guest["kit"]["uid"] == "room-a"
    status, again = await api.call(
        "POST", "/join", {"code": invite["code"], "name": "Bo"}, token=""
    )
    assert (status, again["error"]["code"]) == (404, "invite-invalid")


async def test_the_signaling_proxy_admits_guests_only(kit: Daemon, api: Api) -> None:
    assert kit.api is not None
    await api.ok("PUT", "/session", {"session_id": "proxy"})
    invite = await api.ok("POST", "/invites", {})
    guest = await api.ok("POST", "/join", {"code": invite["code"]})
    url = kit.api.url + "/api/v1/signaling"
    assert kit.calls is not None

    async with aiohttp.ClientSession() as http:
        # The kit's own auth token is a valid server token, but not a guest's: refused.
        ws = await http.ws_connect(url)
        await ws.send_json({"type": "hello", "id": 1, "auth_token": kit.api.context.auth_token})
        refusal = await ws.receive_json(timeout=10)
        assert (refusal["type"], refusal["code"], refusal["id"]) == ("error", "unauthorized", 1)
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE

        ws = await http.ws_connect(url)
        await ws.send_json({"type": "hello", "id": 1, "auth_token": guest["auth_token"]})
        welcome = await ws.receive_json(timeout=10)
        assert welcome == {"type": "welcome", "id": 1, "uid": guest["uid"], "name": "Guest"}
        await ws.send_json(
            {"type": "join", "id": 2, "session_id": "proxy", "call_token": guest["call_token"]}
        )
        joined = await ws.receive_json(timeout=10)
        assert joined["type"] == "joined"
        assert [p["uid"] for p in joined["participants"]] == ["room-a"]
        await ws.close()


async def test_an_expired_meeting_link_is_refused(
    kit: Daemon, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.api import guests

    invite = await api.ok("POST", "/invites", {"ttl": 60, "uses": 5})
    later = time.time() + 61  # the link's minute has passed
    monkeypatch.setattr(guests, "time", SimpleNamespace(time=lambda: later))
    status, reply = await api.call("POST", "/join", {"code": invite["code"]}, token="")
    assert (status, reply["error"]["code"]) == (404, "invite-invalid")
    assert (await api.ok("GET", "/session"))["state"] == "idle"  # nothing started
