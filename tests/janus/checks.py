"""What Janus and the kits say about a call: Janus's admin API per kit, a room's existence
and allowed list, a stranger's attempt to join, a call that ended cleanly, the tones a kit
hears (several at once, so by their spectral levels rather than the dominant one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from appliance.media.janus.api import JanusAdmin, JanusConnection
from tests.janus.server import JanusProcess
from tests.kits import Kit


@dataclass
class KitOnJanus:
    """What Janus's admin API says about one kit's Janus session."""

    uid: str
    sent_video: int  # video streams Janus receives from the kit (packets came in)
    sent_audio: int
    received_video: int  # video streams Janus sends to the kit (packets went out)
    subscribers_of_video: list[int]  # per published video stream: how many receive it
    video_codecs: list[str]  # per published video stream, as Janus negotiated it


async def kits_on_janus(janus: JanusProcess) -> dict[str, KitOnJanus]:
    """Every kit with a publisher in a room, by its uid (the publisher's display)."""
    admin = JanusAdmin(janus.admin_url, janus.admin_secret)
    found: dict[str, KitOnJanus] = {}
    for session_id in await admin.sessions():
        infos = [await admin.handle_info(session_id, h) for h in await admin.handles(session_id)]
        publishers = [
            i["plugin_specific"]
            for i in infos
            if i.get("plugin_specific", {}).get("type") == "publisher"
        ]
        if not publishers:
            continue  # the session server's control session
        (publisher,) = publishers
        counts = {"in-video": 0, "in-audio": 0, "out-video": 0}
        for info in infos:
            for media in (info.get("webrtc") or {}).get("media", {}).values():
                stats = media.get("stats", {})
                if media.get("direction", {}).get("recv") and stats["in"]["packets"] > 0:
                    counts[f"in-{media['type']}"] = counts.get(f"in-{media['type']}", 0) + 1
                if media.get("direction", {}).get("send") and stats["out"]["packets"] > 0:
                    counts[f"out-{media['type']}"] = counts.get(f"out-{media['type']}", 0) + 1
        found[publisher["display"]] = KitOnJanus(
            uid=publisher["display"],
            sent_video=counts["in-video"],
            sent_audio=counts["in-audio"],
            received_video=counts["out-video"],
            subscribers_of_video=[
                s["subscribers"] for s in publisher.get("streams", []) if s["type"] == "video"
            ],
            video_codecs=[
                s.get("codec", "") for s in publisher.get("streams", []) if s["type"] == "video"
            ],
        )
    return found


async def join_room(janus: JanusProcess, body: dict[str, object]) -> dict[str, object]:
    """Joins a VideoRoom as a stranger would: straight to Janus, with what it has."""
    connection = await JanusConnection.open(janus.url, api_secret=janus.api_secret)
    try:
        session = await connection.create_session()
        handle = await session.attach()
        reply = await handle.message(body)
        return reply.data
    finally:
        await connection.close()


async def allowed_tokens(janus: JanusProcess, room: int, secret: str) -> list[str]:
    connection = await JanusConnection.open(janus.url, api_secret=janus.api_secret)
    try:
        session = await connection.create_session()
        handle = await session.attach()
        reply = await handle.message(
            {"request": "allowed", "room": room, "secret": secret, "action": "add", "allowed": []}
        )
        return list(reply.data["allowed"])
    finally:
        await connection.close()


async def room_exists(janus: JanusProcess, room: int) -> bool:
    connection = await JanusConnection.open(janus.url, api_secret=janus.api_secret)
    try:
        session = await connection.create_session()
        handle = await session.attach()
        reply = await handle.message({"request": "exists", "room": room})
        return bool(reply.data["exists"])
    finally:
        await connection.close()


async def ended_cleanly(kit: Kit, timeout: float = 20.0) -> None:
    """onCallEnded came, the kit is idle, and its camera and microphone are released."""
    await kit.wait_for("onCallEnded", timeout=timeout)
    async with asyncio.timeout(timeout):
        while kit.calls.session is not None:
            await asyncio.sleep(0.05)
    assert kit.calls.state.value == "idle"
    assert not kit.cameras[0].is_open
    assert not kit.microphone.is_open


def tone_levels(kit: Kit, tones: list[float]) -> list[float]:
    """Spectral magnitude (dB over the median bin) at each tone in what the kit played."""
    pcm = kit.output().recent(0.5).astype(np.float64)
    if len(pcm) < 4800:  # nothing (much) played yet
        return [0.0 for _ in tones]
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    floor = float(np.median(spectrum)) + 1e-9
    return [
        20 * np.log10((spectrum[(freqs > hz - 10) & (freqs < hz + 10)].max() + 1e-9) / floor)
        for hz in tones
    ]


async def until_heard(kit: Kit, tones: list[float], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while min(tone_levels(kit, tones)) < 30:
            await asyncio.sleep(0.1)
