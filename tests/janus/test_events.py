"""The call core's events mean the same on Janus as in a mesh: ringing and buttons, a call
switched to video, the idle timeout, the end of a call."""

import asyncio

from appliance.media.janus.room import JanusRoomMedia
from hal.buttons.base import LedName, LedState
from tests.janus.checks import kits_on_janus, until_heard
from tests.janus.server import JanusProcess
from tests.kits import KitFactory


async def test_ringing_and_buttons_drive_a_call_on_janus(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    assert a.controller is not None
    call = await a.controller.place_call("room-b", "video")
    await b.wait_for("onIncomingCallReceived")  # ringing still runs on the session server
    assert b.calls.state.value == "ringing"
    b.buttons.press("mute")  # answers
    await a.wait_for("onOutgoingCallAccepted")
    await a.wait_for_video_from("room-b", timeout=30)
    await b.wait_for_video_from("room-a", timeout=30)
    await a.wait_to_hear(b.tone_hz, timeout=20)
    assert isinstance(a.calls.session.media, JanusRoomMedia)  # type: ignore[union-attr]
    assert await a.buttons.observed_led(LedName.IN_CALL) == LedState.ON

    mark = len(a.events)
    b.buttons.press("mute")  # in a call: mutes
    muted = await a.wait_for("onUserMuted", after=mark, timeout=20)
    assert muted.data["muted"]["uid"] == "room-b"
    await a.wait_for_silence(timeout=20)

    a.buttons.press("end")
    await b.wait_for("onCallEndedMessageReceived", timeout=20)
    for kit in (a, b):
        await kit.wait_for("onCallEnded", timeout=20)
    async with asyncio.timeout(10):
        while a.calls.state.value != "idle" or b.calls.state.value != "idle":
            await asyncio.sleep(0.02)
    log = await a.calls._api.calls(a.auth_token)
    assert log[0].session_id == call.session_id
    assert log[0].status == "ended"


async def test_an_audio_call_switched_to_video_on_janus(
    kits: KitFactory, janus: JanusProcess
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    c = await kits("room-c")
    await a.join("voice", is_audio_only=True)
    await b.join("voice", is_audio_only=True)
    await c.join("voice", is_audio_only=True)
    for kit in (a, b, c):
        await until_heard(kit, [o.tone_hz for o in (a, b, c) if o is not kit])
    await asyncio.sleep(0.5)
    assert all(kit.view.counts == {} for kit in (a, b, c))
    assert not any(camera.is_open for kit in (a, b, c) for camera in kit.cameras)
    assert all(k.sent_video == 0 for k in (await kits_on_janus(janus)).values())

    await b.calls.switch_to_video_call()
    for kit in (a, b, c):
        switched = await kit.wait_for("onCallSwitchedToVideo", timeout=20)
        assert switched.data["request_initiated_by"]["uid"] == "room-b"
    for kit in (a, b, c):
        for other in (a, b, c):
            if other is not kit:
                await kit.wait_for_video_from(other.uid, timeout=40)
    on_janus = await kits_on_janus(janus)
    assert {uid: k.sent_video for uid, k in on_janus.items()} == {
        "room-a": 1,
        "room-b": 1,
        "room-c": 1,
    }


async def test_idle_timeout_alone_in_a_janus_room(kits: KitFactory) -> None:
    a = await kits("room-a")
    await a.join("empty-room", idle_timeout_period=2)
    warning = await a.wait_for("onSessionTimeoutWarning")
    assert warning.data["seconds_left"] == 2
    await a.wait_for("onSessionTimeout", timeout=10)
    assert a.calls.session is None
    assert not a.microphone.is_open
    assert not a.named("onCallEnded")
