"""A session's room comes and goes with the session; a Janus that dies ends calls cleanly."""

import asyncio

import pytest

from appliance.calls import CallsError
from appliance.server import SessionServer
from tests.janus.checks import ended_cleanly, room_exists
from tests.janus.server import JanusProcess
from tests.kits import KitFactory


async def test_the_room_lives_as_long_as_the_session(
    kits: KitFactory, server: SessionServer, janus: JanusProcess
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("one-to-one")
    room = server.janus.rooms["one-to-one"]  # type: ignore[union-attr]
    assert await room_exists(janus, room.room_id)
    await b.join("one-to-one")
    await a.wait_for_video_from("room-b", timeout=30)
    await b.wait_for_video_from("room-a", timeout=30)
    await a.wait_to_hear(b.tone_hz, timeout=20)

    # b hangs up: a one-to-one call is over for a too, and its room goes.
    await b.calls.end_session()
    await ended_cleanly(a)
    await ended_cleanly(b)
    assert "one-to-one" not in server.janus.rooms  # type: ignore[union-attr]
    async with asyncio.timeout(10):
        while await room_exists(janus, room.room_id):
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_janus_dying_ends_every_call_cleanly_and_a_restarted_janus_serves_again(
    kits: KitFactory, server: SessionServer, janus: JanusProcess
) -> None:
    room = [await kits(uid) for uid in ("room-a", "room-b", "room-c")]
    for kit in room:
        await kit.join("doomed")
    for kit in room:
        for other in room:
            if other is not kit:
                await kit.wait_for_video_from(other.uid, timeout=40)

    janus.kill()
    for kit in room:
        await ended_cleanly(kit)
        lost = await kit.wait_for("onWarning", lambda d: d["code"] == "media-server-lost")
        assert lost.data["device"] == "network"
    assert not server.rooms.is_live("doomed")  # every kit left the session

    # While Janus is away, a call cannot start: a clear refusal, the kit stays idle.
    a, b = room[0], room[1]
    with pytest.raises(CallsError) as refused:
        await a.join("while-down")
    assert refused.value.code == "media-unavailable"
    assert a.calls.session is None
    assert not a.cameras[0].is_open

    # Janus is back (same ports, as systemd would restart it): calls work again.
    await janus.start()
    await a.join("after")
    await b.join("after")
    await a.wait_for_video_from("room-b", timeout=30)
    await b.wait_for_video_from("room-a", timeout=30)
