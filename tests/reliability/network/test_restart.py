"""ICE restarts between two kits in this process: a connection that stops carrying media is
replaced by a fresh one negotiated through the session server, media comes back (the far
camera's frame counter advances again, its tone is heard), and nobody is told that anyone
left or joined. Faults that need separate network stacks are in test_faults.py."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection

from appliance.media.consent import ice_connections, query_consent
from appliance.media.datagrams import ReadAllWaiting
from tests.kits import Kit, KitFactory
from tests.reliability.network.impair import Impairment, impair_connection

CUT = Impairment(cut=True)
MEMBERSHIP = ("onUserLeft", "onUserJoined", "onCallEnded", "onSessionTimeout")


async def in_call(kits: KitFactory, session_id: str) -> tuple[Kit, Kit]:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join(session_id)
    await b.join(session_id)
    await a.wait_for_video_from("room-b", timeout=20)
    await b.wait_for_video_from("room-a", timeout=20)
    return a, b


def warnings(kit: Kit, code: str) -> list[str]:
    return [e.data["message"] for e in kit.named("onWarning") if e.data["code"] == code]


def ours_on_the_wire(pc: RTCPeerConnection) -> bool:
    """Whether the consent checks running on ``pc``'s ICE are ours (not aioice's) and each
    of its sockets reads all the datagrams waiting (not asyncio's one a pass)."""
    connections = list(ice_connections(pc))
    tasks = [c._query_consent_task for c in connections]
    readers = [vars(p.transport).get("_read_ready") for c in connections for p in c._protocols]
    return (
        bool(tasks)
        and all(
            t is not None and t.get_coro().cr_code is query_consent.__code__  # type: ignore[union-attr]
            for t in tasks
        )
        and bool(readers)
        and all(isinstance(r, ReadAllWaiting) for r in readers)
    )


def link(kit: Kit, uid: str) -> dict[str, object]:
    snapshot = kit.calls.snapshot()
    (participant,) = [p for p in snapshot["participants"] if p["uid"] == uid]
    media: dict[str, object] = participant["media"]
    return media


async def test_a_connection_that_stops_is_replaced_and_media_comes_back(
    kits: KitFactory,
) -> None:
    a, b = await in_call(kits, "cut")
    mark_a, mark_b = len(a.events), len(b.events)
    assert a.calls.session is not None and b.calls.session is not None
    old_a = a.calls.session.peers["room-b"].pc
    old_b = b.calls.session.peers["room-a"].pc
    assert ours_on_the_wire(old_a) and ours_on_the_wire(old_b)
    # The path between them dies, both ways, for this connection only.
    assert impair_connection(old_a, lambda: CUT) > 0
    assert impair_connection(old_b, lambda: CUT) > 0

    # The first to notice (4 s without a packet) tells its delegate and makes a new
    # connection; the other may have its own replaced before it notices.
    async with asyncio.timeout(20):
        while not (interrupted := [k for k in (a, b) if warnings(k, "media-interrupted")]):
            await asyncio.sleep(0.1)
    for kit in interrupted:
        await kit.wait_for("onWarning", lambda d: d["code"] == "media-restored", timeout=20)

    await a.wait_for_video_from("room-b", timeout=15)
    await b.wait_for_video_from("room-a", timeout=15)
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)
    # New connections at both ends, the same one.
    pa, pb = a.calls.session.peers["room-b"], b.calls.session.peers["room-a"]
    assert pa.pc is not old_a and pb.pc is not old_b
    assert ours_on_the_wire(pa.pc) and ours_on_the_wire(pb.pc)
    assert pa.generation == pb.generation > 0
    assert link(a, "room-b")["connection"] == link(b, "room-a")["connection"] == "connected"
    assert link(a, "room-b")["restarts"] == link(b, "room-a")["restarts"] == 1
    for kit, mark in ((a, mark_a), (b, mark_b)):
        assert [e.event for e in kit.events[mark:] if e.event in MEMBERSHIP] == []
        assert kit.calls.state.value == "active"


async def test_restarts_from_both_sides_at_once_settle_on_one_connection(
    kits: KitFactory,
) -> None:
    a, b = await in_call(kits, "glare")
    assert a.calls.session is not None and b.calls.session is not None
    mark_a, mark_b = len(a.events), len(b.events)
    pa, pb = a.calls.session.peers["room-b"], b.calls.session.peers["room-a"]
    await asyncio.gather(pa.restart(), pb.restart())

    await a.wait_for_video_from("room-b", frames=10, timeout=20)
    await b.wait_for_video_from("room-a", frames=10, timeout=20)
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)
    assert pa.generation == pb.generation
    assert pa.offerer != pb.offerer  # one offer went on, the other side answered it
    assert pa.pc.connectionState == pb.pc.connectionState == "connected"
    for kit, mark in ((a, mark_a), (b, mark_b)):
        assert [e.event for e in kit.events[mark:] if e.event in MEMBERSHIP] == []


async def test_receive_stats_count_what_arrives(kits: KitFactory) -> None:
    a, b = await in_call(kits, "stats")
    await a.wait_to_hear(b.tone_hz)
    first = link(a, "room-b")
    await b.wait_for_video_from("room-a", frames=15)
    await asyncio.sleep(1.5)  # a stats reading or two later
    later = link(a, "room-b")
    assert later["connection"] == "connected"
    assert later["restarts"] == 0
    assert later["video_frames"] > first["video_frames"]  # type: ignore[operator]
    assert later["packets_received"] > first["packets_received"]  # type: ignore[operator]
    assert later["audio_level_dbfs"] > -40  # type: ignore[operator]  # b's tone, -10 dBFS sent
    assert later["last_received_s"] < 2  # type: ignore[operator]
    assert a.calls.snapshot()["participants"][0].get("media") is None  # not for ourselves
