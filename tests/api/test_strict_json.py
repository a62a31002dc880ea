"""Every body the REST API and its events WebSocket send is strict JSON (RFC 8259), as a
browser's ``JSON.parse`` reads it: never NaN or Infinity. ``Api.call`` parses every reply
of every API test that way; here the cases that once broke it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.daemon import Daemon
from appliance.jsonwire import dumps, json_response
from tests.api.daemon import Api, strict_loads
from tests.kits import Kit, KitFactory


@pytest.fixture
async def silent_far(kit: Daemon, tmp_path: Path) -> AsyncIterator[Kit]:
    """A far kit whose microphone sends digital silence, as a browser guest's muted track."""
    assert kit.server is not None
    factory = KitFactory(kit.server, tmp_path)
    try:
        far = await factory("room-b")
        far.microphone.set_silent(True)
        yield far
    finally:
        await factory.close()


async def test_a_silent_participant_reads_as_json_in_the_session_and_the_events(
    kit: Daemon, api: Api, silent_far: Kit
) -> None:
    assert kit.api is not None
    ws = await api.http.ws_connect(kit.api.url + "/api/v1/events", headers=api.headers())
    await api.ok("PUT", "/session", {"session_id": "quiet"})
    await silent_far.join("quiet")
    frames: list[Any] = []

    async def events() -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                frames.append(strict_loads(message.data))

    reader = asyncio.create_task(events())
    try:
        # Seconds of the far kit's silence decoded and metered: every read is strict JSON
        # (api.call refuses NaN and Infinity), the level of silence is a finite number.
        async with asyncio.timeout(30):
            while True:
                view = await api.ok("GET", "/session")
                far = [p for p in view["participants"] if p["uid"] == "room-b"]
                media = far[0]["media"] if far else None
                if media and (media["packets_received"] or 0) > 150:
                    break
                await asyncio.sleep(0.2)
        level = media["audio_level_dbfs"]
        assert math.isfinite(level) and level <= -80, media
    finally:
        reader.cancel()
        await ws.close()
    assert any(frame["event"] == "onUserJoined" for frame in frames)


async def test_a_non_finite_number_is_a_logged_500_never_a_body() -> None:
    with pytest.raises(ValueError, match="JSON"):
        dumps({"level": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        json_response({"level": float("-inf")})
    assert strict_loads(json_response({"level": -90.0}).text or "") == {"level": -90.0}


def test_no_reply_is_written_past_the_strict_encoder() -> None:
    """The REST layers send JSON through ``appliance.jsonwire`` only (ruff bans
    ``web.json_response``; a WebSocket's ``send_json`` is checked here)."""
    root = Path(__file__).resolve().parents[2] / "appliance"
    loose = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "jsonwire.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ".send_json(" in line
    ]
    assert loose == []

