"""Five kits in one session on Janus: each decodes every other kit's video and hears every
tone, each sends its video exactly once (Janus's admin API says so), and the call core's
events fire as in a mesh call."""

import asyncio

import pytest

from appliance.media.consent import ice_connections
from appliance.media.datagrams import ReadAllWaiting
from appliance.media.janus.room import JanusRoomMedia
from tests.janus.checks import kits_on_janus, tone_levels, until_heard
from tests.janus.server import JanusProcess
from tests.kits import KitFactory

UIDS = [f"room-{c}" for c in "abcde"]


@pytest.mark.slow
async def test_five_kits_on_janus(kits: KitFactory, janus: JanusProcess) -> None:
    room = [await kits(uid) for uid in UIDS]
    for kit in room:
        await kit.join("all-hands")
        session = kit.calls.session
        assert session is not None
        assert isinstance(session.media, JanusRoomMedia)
        assert session.peers == {}

    # Every kit decodes every other kit's camera (its frame counter advances) and hears
    # every other kit's tone.
    for kit in room:
        for other in room:
            if other is not kit:
                await kit.wait_for_video_from(other.uid, timeout=60)
    for kit in room:
        await until_heard(kit, [o.tone_hz for o in room if o is not kit])

    # Janus received exactly one video stream from each kit, and sent that one stream on
    # to the four others; each kit receives four videos.
    seen = await kits_on_janus(janus)
    assert set(seen) == set(UIDS)
    for uid, on_janus in seen.items():
        assert on_janus.sent_video == 1, uid
        assert on_janus.sent_audio == 1, uid
        assert on_janus.subscribers_of_video == [4], uid
        assert on_janus.received_video == 4, uid
    # Nor did any kit open a peer connection to another: the mesh is not in use.
    assert all(kit.calls.session and not kit.calls.session.peers for kit in room)

    # The events of a call, as in a mesh: everyone joined, the list has all five.
    for kit in room:
        joined = {e.data["uid"] for e in kit.named("onUserJoined")}
        assert joined == set(UIDS) - {kit.uid}
        users = kit.named("onUserListChanged")[-1].data["users"]
        assert {u["uid"] for u in users} == set(UIDS)

    # Muted: the others are told, and the tone goes from what they hear.
    a, e = room[0], room[-1]
    marks = [len(k.events) for k in room]
    await e.calls.mute_audio(True)
    for kit, mark in zip(room[:-1], marks, strict=False):
        muted = await kit.wait_for("onUserMuted", after=mark, timeout=20)
        assert muted.data["muted"]["uid"] == e.uid
        assert muted.data["is_muted"] is True
    others = [k.tone_hz for k in room[1:-1]]
    # e's tone sinks towards the floor (heard, it stands 100 dB and more over the median
    # bin; muted, about 30) and stays 30 dB under the others'. Not 50 dB under: with both
    # cores busy, five kits' mixers underrun now and then, and a half-second window with a
    # gap holds the others at about 75 while e's leakage stays near 35.
    async with asyncio.timeout(20):
        while not (
            (muted_level := tone_levels(a, [e.tone_hz])[0]) < 50
            and min(tone_levels(a, others)) > muted_level + 30
        ):
            await asyncio.sleep(0.1)

    # Recording toggled and video paused reach everyone the same way.
    mark = len(a.events)
    await room[1].calls.start_recording()
    toggled = await a.wait_for("onRecordingToggled", after=mark, timeout=20)
    assert toggled.data["is_recording_started"] is True
    assert toggled.data["user"]["uid"] == room[1].uid
    await room[1].calls.stop_recording()
    mark = len(a.events)
    await room[2].calls.pause_video(True)
    paused = await a.wait_for("onUserVideoPaused", after=mark, timeout=20)
    assert paused.data["user"]["uid"] == room[2].uid
    await room[2].calls.pause_video(False)
    await a.wait_for_video_from(room[2].uid, timeout=30)

    # One leaves: the others see it go and carry on.
    marks = [len(k.events) for k in room]
    await e.calls.end_session()
    for kit, mark in zip(room[:-1], marks, strict=False):
        left = await kit.wait_for("onUserLeft", after=mark, timeout=20)
        assert left.data["uid"] == e.uid
        users = await kit.wait_for("onUserListChanged", after=mark, timeout=20)
        assert {u["uid"] for u in users.data["users"]} == set(UIDS) - {e.uid}
    assert not any(k.named("onCallEnded") for k in room[:-1])
    await a.wait_for_video_from(room[3].uid, timeout=30)
    async with asyncio.timeout(20):  # e's feed is gone from Janus too
        while e.uid in await kits_on_janus(janus):
            await asyncio.sleep(0.2)


async def test_every_connection_with_janus_reads_all_its_waiting_datagrams(
    kits: KitFactory, janus: JanusProcess
) -> None:
    """A subscription's one socket carries all of a feed's packets (about 70 a second); read
    one a pass of the event loop, as asyncio does, it fell further behind every second the
    loop made fewer passes (five kits in one test process: 45 a second), until Janus's
    answers to consent checks came too late and the subscription closed: after a pause,
    test_five_kits_on_janus saw no video again (appliance.media.datagrams)."""
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("pair")
    await b.join("pair")
    await a.wait_for_video_from(b.uid, timeout=30)
    await b.wait_for_video_from(a.uid, timeout=30)
    for kit in (a, b):
        media = kit.calls.session.media if kit.calls.session else None
        assert isinstance(media, JanusRoomMedia)
        assert media.publisher is not None and media.publisher.pc is not None
        pcs = [media.publisher.pc, *(s.pc for s in media.subscriptions.values())]
        assert len(pcs) == 2 and all(pc is not None for pc in pcs)
        transports = [
            p.transport
            for pc in pcs
            if pc is not None
            for c in ice_connections(pc)
            for p in c._protocols
        ]
        assert transports
        assert all(isinstance(vars(t).get("_read_ready"), ReadAllWaiting) for t in transports)
