"""Audio-only calls send no video until switched to video by renegotiation."""

import asyncio

import pytest

from appliance.calls import CallsError
from tests.janus.checks import until_heard
from tests.kits import KitFactory


async def test_audio_only_sends_no_video_until_switched(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("voice", is_audio_only=True)
    await b.join("voice", is_audio_only=True)
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)
    await asyncio.sleep(0.5)
    assert a.view.counts == {}
    assert b.view.counts == {}
    assert not any(camera.opens for kit in (a, b) for camera in kit.cameras)  # never opened
    assert b.calls.snapshot()["local"]["audio_only"] is True

    await b.calls.switch_to_video_call()
    for kit in (a, b):
        switched = await kit.wait_for("onCallSwitchedToVideo")
        assert switched.data["session_id"] == "voice"
        assert switched.data["request_initiated_by"]["uid"] == "room-b"
    assert (await a.wait_for("onCallSwitchedToVideo")).data["request_accepted_by"]["uid"] == (
        "room-a"
    )
    await a.wait_for_video_from("room-b")
    await b.wait_for_video_from("room-a")
    await a.wait_to_hear(b.tone_hz)  # audio kept flowing through the renegotiation
    assert a.calls.snapshot()["local"]["audio_only"] is False


async def test_audio_only_is_each_kits_own(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    c = await kits("room-c")
    await a.join("mixed", is_audio_only=True)
    await b.join("mixed")  # a video kit joining an audio-only one keeps its camera
    await c.join("mixed")
    await b.wait_for_video_from("room-c", timeout=20)
    await c.wait_for_video_from("room-b", timeout=20)
    for kit in (a, b, c):
        await until_heard(kit, [o.tone_hz for o in (a, b, c) if o is not kit])
    assert a.view.counts == {}
    assert "room-a" not in b.view.counts and "room-a" not in c.view.counts
    assert not any(camera.opens for camera in a.cameras)
    assert a.calls.snapshot()["local"]["audio_only"] is True
    assert b.calls.snapshot()["local"]["audio_only"] is False
    users = {u["uid"]: u["audio_only"] for u in c.calls.snapshot()["participants"]}
    assert users == {"room-a": True, "room-b": False, "room-c": False}


async def test_switching_a_video_call_to_video_is_refused(kits: KitFactory) -> None:
    a = await kits("room-a")
    await a.join("video")
    with pytest.raises(CallsError) as err:
        await a.calls.switch_to_video_call()
    assert err.value.code == "not-audio-only"
