"""Two kits in a session-only call: real WebRTC between them over loopback."""

import asyncio

import av

from hal.camera.pattern import read_pattern
from tests.kits import KitFactory


async def test_each_kit_sees_and_hears_the_other(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("standup")
    await b.join("standup")

    await a.wait_for_video_from("room-b")
    await b.wait_for_video_from("room-a")
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)

    joined = await a.wait_for("onUserJoined", lambda d: d["uid"] == "room-b")
    assert joined.data["name"] == "Room B"
    seen_by_b = await b.wait_for("onUserJoined", lambda d: d["uid"] == "room-a")
    assert seen_by_b.data["name"] == "Room A"
    listed = await b.wait_for("onUserListChanged")
    assert {u["uid"] for u in listed.data["users"]} == {"room-a", "room-b"}
    # The self view shows the kit's own camera.
    assert a.view.counter("local") is not None


async def test_mute_stops_the_tone_at_the_far_end(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s1")
    await b.join("s1")
    await a.wait_to_hear(b.tone_hz)

    mark = len(a.events)
    await b.calls.mute_audio(True)
    muted = await a.wait_for("onUserMuted", after=mark)
    assert muted.data["muted"]["uid"] == "room-b"
    assert muted.data["is_muted"] is True
    await a.wait_for_silence()
    # Only silence for a while: nothing of b's tone leaks through.
    await asyncio.sleep(0.5)
    assert a.heard(0.5)[1] < -60

    mark = len(a.events)
    await b.calls.mute_audio(False)
    unmuted = await a.wait_for("onUserMuted", after=mark)
    assert unmuted.data["is_muted"] is False
    await a.wait_to_hear(b.tone_hz)


async def test_pause_video_stops_frames_and_releases_the_camera(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s2")
    await b.join("s2")
    await a.wait_for_video_from("room-b")

    mark = len(a.events)
    await b.calls.pause_video(True)
    paused = await a.wait_for("onUserVideoPaused", after=mark)
    assert paused.data["user"]["uid"] == "room-b"
    assert paused.data["is_paused"] is True
    assert not b.cameras[0].is_open
    await asyncio.sleep(0.3)
    frames = a.view.counts["room-b"]
    await asyncio.sleep(0.5)
    assert a.view.counts["room-b"] == frames  # nothing more arrives

    await b.calls.pause_video(False)
    assert b.cameras[0].is_open
    await a.wait_for_video_from("room-b")


async def test_start_muted_and_video_off_hold_from_the_first_packet(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s3")
    await b.join("s3", start_audio_muted=True, start_video_muted=True)
    joined = await a.wait_for("onUserJoined", lambda d: d["uid"] == "room-b")
    assert joined.data["audio_muted"] is True
    assert joined.data["video_paused"] is True
    await b.wait_for_video_from("room-a")  # the call is up and media flows a -> b
    await asyncio.sleep(1.0)
    assert a.view.counts.get("room-b", 0) == 0
    assert a.heard(1.0)[1] < -60
    assert not b.cameras[0].is_open
    assert b.microphone.is_open  # the microphone runs, its audio is not sent

    await b.calls.mute_audio(False)
    await b.calls.pause_video(False)
    await a.wait_to_hear(b.tone_hz)
    await a.wait_for_video_from("room-b")


async def test_switch_camera_changes_what_the_far_end_sees(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s4")
    await b.join("s4")
    await a.wait_for_video_from("room-b")
    assert read_pattern(a.view.latest["room-b"]).camera_index == 0  # type: ignore[union-attr]

    await b.calls.switch_camera()
    async with asyncio.timeout(10):
        while (info := read_pattern(a.view.latest["room-b"])) is None or info.camera_index != 1:
            await asyncio.sleep(0.05)
    assert not b.cameras[0].is_open
    assert b.cameras[1].is_open
    await b.calls.switch_camera()
    async with asyncio.timeout(10):
        while (info := read_pattern(a.view.latest["room-b"])) is None or info.camera_index != 0:
            await asyncio.sleep(0.05)


async def test_ending_a_one_to_one_call_ends_it_for_both(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s5")
    await b.join("s5")
    await a.wait_for_video_from("room-b")
    await b.wait_to_hear(a.tone_hz)

    await a.calls.end_session()
    await a.wait_for("onCallEnded")
    await b.wait_for("onCallEnded")
    left = await b.wait_for("onUserLeft")
    assert left.data["uid"] == "room-a"
    for kit in (a, b):
        assert kit.calls.session is None
        assert kit.calls.state.value == "idle"
        assert not kit.microphone.is_open
        assert not any(camera.is_open for camera in kit.cameras)
        assert kit.view.latest.keys() == set()
        assert not kit.output().is_open  # the route is released
    played = b.output().total_samples
    await asyncio.sleep(0.3)
    assert b.output().total_samples == played  # nothing more is played


async def test_recording_writes_a_playable_file(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s6")
    await b.join("s6")
    await a.wait_for_video_from("room-b")
    await a.wait_to_hear(b.tone_hz)

    path = await a.calls.start_recording()
    started_b = await b.wait_for("onRecordingToggled")
    assert started_b.data["is_recording_started"] is True
    assert started_b.data["user"]["uid"] == "room-a"
    assert (await a.wait_for("onRecordingToggled")).data["path"] == str(path)
    await asyncio.sleep(2.0)
    await a.calls.stop_recording()
    stopped = await b.wait_for("onRecordingToggled", lambda d: not d["is_recording_started"])
    assert stopped.data["user"]["uid"] == "room-a"

    with av.open(str(path)) as container:
        assert container.streams.video and container.streams.audio
        video = [f for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = [f.to_ndarray() for f in container.decode(audio=0)]
    assert len(video) >= 15  # ~2 s at 15 fps
    assert read_pattern(video[-1]) is not None  # the far kit's camera, as recorded
    samples = sum(chunk.shape[-1] for chunk in audio)
    assert samples >= 1.5 * 48_000


async def test_joining_a_call_being_recorded_is_told(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("s-rec", is_audio_only=True)
    await a.calls.start_recording()
    await b.join("s-rec", is_audio_only=True)
    told = await b.wait_for("onRecordingToggled")
    assert told.data["is_recording_started"] is True
    assert told.data["user"]["uid"] == "room-a"
    await a.calls.stop_recording()
    await b.wait_for("onRecordingToggled", lambda d: not d["is_recording_started"])
