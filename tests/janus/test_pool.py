"""Several Janus servers behind the session servers: each new room goes to the least loaded
Janus that answers, counting what other session servers placed there too."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.server import SessionServer
from tests.janus.checks import ended_cleanly, room_exists
from tests.janus.server import JanusProcess, running_janus
from tests.kits import KitFactory, running_server


@pytest.fixture
async def second_janus(tmp_path: Path) -> AsyncIterator[JanusProcess]:
    async with running_janus(tmp_path / "janus-2") as janus:
        yield janus


@pytest.mark.slow
async def test_rooms_go_to_the_least_loaded_janus_that_answers(
    tmp_path: Path, janus: JanusProcess, second_janus: JanusProcess
) -> None:
    pool = [janus.config(), second_janus.config()]
    async with (
        running_server(tmp_path / "a", media="janus", janus=pool) as server_a,
        running_server(tmp_path / "b", media="janus", janus=pool) as server_b,
    ):
        kits_a, kits_b = KitFactory(server_a, tmp_path / "a"), KitFactory(server_b, tmp_path / "b")
        try:
            await place_rooms(server_a, server_b, kits_a, kits_b, janus, second_janus)
        finally:
            await kits_a.close()
            await kits_b.close()


async def place_rooms(
    server_a: SessionServer,
    server_b: SessionServer,
    kits_a: KitFactory,
    kits_b: KitFactory,
    first: JanusProcess,
    second: JanusProcess,
) -> None:
    assert server_a.janus is not None and server_b.janus is not None
    # Server B's room, with nothing anywhere yet, goes to the first Janus listed.
    b1, b2 = await kits_b("room-b1"), await kits_b("room-b2")
    await b1.join("team-b")
    await b2.join("team-b")
    placed_b = server_b.janus.rooms["team-b"]
    assert placed_b.server.url == first.url
    await b1.wait_for_video_from("room-b2", timeout=30)

    # Server A placed nothing itself, but the first Janus's admin API shows B's kits there:
    # A's room goes to the second.
    a1 = await kits_a("room-a1")
    await a1.join("team-a")
    placed_a = server_a.janus.rooms["team-a"]
    assert placed_a.server.url == second.url
    assert await room_exists(second, placed_a.room_id)
    assert not await room_exists(first, placed_a.room_id)
    a2 = await kits_a("room-a2")
    await a2.join("team-a")
    await a1.wait_for_video_from("room-a2", timeout=30)
    await a2.wait_for_video_from("room-a1", timeout=30)

    # The second Janus dies: its calls end cleanly, the first's go on, and new rooms go
    # to the one that answers.
    second.kill()
    await ended_cleanly(a1)
    await ended_cleanly(a2)
    await asyncio.sleep(0.5)
    assert not b1.named("onCallEnded")
    await b1.wait_for_video_from("room-b2", timeout=30)
    await a1.join("team-a-again")
    assert server_a.janus.rooms["team-a-again"].server.url == first.url
    await a2.join("team-a-again")
    await a2.wait_for_video_from("room-a1", timeout=30)
