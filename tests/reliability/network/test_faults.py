"""Network faults between kits, each kit a ``callbox run`` process in its own network
namespace on a bridged LAN with the session server (``netns.py``):

- 5 % loss with 100 ms +- 100 ms of delay each way: the call keeps flowing (NACK and PLI
  recovery: the far end keeps decoding video and hearing audio), no ICE restart needed;
- a 10 s cut of one kit's LAN: the call comes back by ICE restart (new connections at both
  ends) with nobody pressing anything and nobody told that anyone left;
- a cut longer than the kits' give-up bound (30 s without media from anyone): both kits
  end the call themselves (``onCallEnded``) and are idle, and the cut kit is back on its
  session server once its LAN returns;
- the same cut in a call of three: the cut kit ends its call; the two others go on with
  each other and see it leave once the server's reconnect grace runs out.

What each kit receives is read from its GET /api/v1/session (frames decoded, audio level,
connection state, restarts, packets lost), its events from /api/v1/events.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from appliance.media.mesh import GIVE_UP_AFTER
from tests.reliability.network.impair import Impairment
from tests.reliability.network.lan_calls import (
    TONES,
    Network,
    flowing,
    hang_up,
    idle,
    running_network,
    start_call,
)
from tests.reliability.network.netns import NetnsUnavailable
from tests.reliability.network.processes import KitProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
log = logging.getLogger(__name__)

LOSSY = Impairment(loss=0.05, delay_ms=100, jitter_ms=100)
CLEAN = Impairment()
IMPAIRED_SECONDS = 10.0
SHORT_CUT = 10.0
THREE = {**TONES, "room-c": 900.0}  # the third kit idles except in the call of three
SERVER_GRACE = 20.0  # [server] reconnect_grace's default, which the server process runs
MEMBERSHIP = ("onUserLeft", "onUserJoined", "onCallEnded", "onSessionTimeout")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    try:
        async with running_network(tmp_path_factory.mktemp("network"), THREE) as running:
            yield running
    except NetnsUnavailable as err:
        pytest.skip(f"network namespaces: {err}")


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def ends_idle(network: Network) -> AsyncIterator[None]:
    """Every test leaves both kits idle, so one that fails does not fail the next."""
    yield
    await hang_up(network)


def membership(kit: KitProcess, after: int) -> list[str]:
    return [e["event"] for e in kit.events[after:] if e["event"] in MEMBERSHIP]


def warned(kit: KitProcess, code: str, after: int) -> bool:
    return any(e["data"].get("code") == code for e in kit.named("onWarning", after))


async def test_with_loss_and_jitter_the_call_keeps_flowing(network: Network) -> None:
    a, b = await start_call(network, "lossy")
    marks = {kit.uid: len(kit.events) for kit in (a, b)}
    before = {"a": await a.received_from("room-b"), "b": await b.received_from("room-a")}
    for uid in TONES:
        await network.impair(uid, LOSSY)
    levels: dict[str, list[float]] = {"a": [], "b": []}
    try:
        # The level is of the last moments played: sampled through the impairment, as a
        # jitter-buffer underrun may dip it at any one instant.
        for _ in range(round(IMPAIRED_SECONDS / 0.5)):
            await asyncio.sleep(0.5)
            levels["a"].append((await a.received_from("room-b"))["audio_level_dbfs"])
            levels["b"].append((await b.received_from("room-a"))["audio_level_dbfs"])
        after = {"a": await a.received_from("room-b"), "b": await b.received_from("room-a")}
    finally:
        for uid in TONES:
            await network.impair(uid, CLEAN)
    log.info("with %s for %g s: %s -> %s", LOSSY, IMPAIRED_SECONDS, before, after)
    for side in ("a", "b"):
        decoded = after[side]["video_frames"] - before[side]["video_frames"]
        # 15 fps for 10 s is 150 frames sent: most must decode despite the loss.
        assert decoded >= 75, (side, decoded)
        assert after[side]["packets_lost"] > before[side]["packets_lost"]  # loss was real
        assert statistics.median(levels[side]) > -40, levels[side]  # the far tone plays on
        assert after[side]["connection"] == "connected"
        assert after[side]["restarts"] == before[side]["restarts"]  # no restart was needed
    for kit in (a, b):
        assert membership(kit, marks[kit.uid]) == []
    await flowing(a, "room-b")
    await flowing(b, "room-a")


async def test_a_ten_second_cut_recovers_by_ice_restart(network: Network) -> None:
    a, b = await start_call(network, "short-cut")
    marks = {kit.uid: len(kit.events) for kit in (a, b)}
    restarts = {
        "a": (await a.received_from("room-b"))["restarts"],
        "b": (await b.received_from("room-a"))["restarts"],
    }
    await network.lan.cut("room-a")
    try:
        await asyncio.sleep(SHORT_CUT)
    finally:
        await network.lan.reconnect("room-a")
    back = asyncio.get_running_loop().time()

    await flowing(b, "room-a", timeout=40)
    await flowing(a, "room-b", timeout=40)
    log.info("media back %.1f s after the LAN", asyncio.get_running_loop().time() - back)
    after_a, after_b = await a.received_from("room-b"), await b.received_from("room-a")
    assert after_a["connection"] == after_b["connection"] == "connected"
    assert after_a["restarts"] > restarts["a"] and after_b["restarts"] > restarts["b"]
    assert warned(a, "media-interrupted", marks["room-a"]) or warned(
        b, "media-interrupted", marks["room-b"]
    )
    for kit in (a, b):
        assert membership(kit, marks[kit.uid]) == []
        assert (await kit.session())["state"] == "active"


async def test_a_long_cut_ends_the_call_on_both_kits(network: Network) -> None:
    a, b = await start_call(network, "long-cut")
    marks = {kit.uid: len(kit.events) for kit in (a, b)}
    await network.lan.cut("room-a")
    try:
        # Each kit ends the call by itself: b still has its server, a has nothing.
        for kit in (a, b):
            await kit.wait_for("onCallEnded", timeout=GIVE_UP_AFTER + 20, after=marks[kit.uid])
            await idle(kit)
        assert warned(a, "connection-lost", marks["room-a"])
        assert (await a.call("GET", "/health"))["session_server"]["connected"] is False
    finally:
        await network.lan.reconnect("room-a")
    # Back on its LAN, the cut kit finds its session server again, idle and ready.
    async with asyncio.timeout(30):
        while not (await a.call("GET", "/health"))["session_server"]["connected"]:
            await asyncio.sleep(0.25)
    for kit in (a, b):
        assert (await kit.session())["state"] == "idle"
        assert kit.named("onUserLeft", marks[kit.uid]) == []  # the call ended, as a whole


async def test_in_a_call_of_three_a_cut_kit_ends_its_call_and_the_others_go_on(
    network: Network,
) -> None:
    a, b, c = (network.kits[uid] for uid in THREE)
    for kit in (a, b, c):
        await kit.call("PUT", "/session", {"session_id": "three-cut"})
    for receiver, sender in ((a, b), (b, c), (c, a), (b, a), (c, b)):
        await receiver.wait_for("onUserJoined", lambda d, uid=sender.uid: d["uid"] == uid)
        await flowing(receiver, sender.uid)
    marks = {kit.uid: len(kit.events) for kit in (a, b, c)}
    await network.lan.cut("room-a")
    try:
        await a.wait_for("onCallEnded", timeout=GIVE_UP_AFTER + 20, after=marks["room-a"])
        await idle(a)
        assert warned(a, "connection-lost", marks["room-a"])
        for kit in (b, c):
            await kit.wait_for(
                "onUserLeft",
                lambda d: d["uid"] == "room-a",
                timeout=SERVER_GRACE + 30,
                after=marks[kit.uid],
            )
    finally:
        await network.lan.reconnect("room-a")
    # b and c are still in the call, with each other's media, told only that a left.
    await flowing(b, "room-c")
    await flowing(c, "room-b")
    for kit in (b, c):
        assert membership(kit, marks[kit.uid]) == ["onUserLeft"], kit.events[marks[kit.uid]:]
        assert (await kit.session())["state"] == "active"
