"""The ringing flow, driven as the appliance drives it: KitController and the buttons."""

import asyncio

import pytest

from appliance.calls import CallsError
from hal.buttons.base import LedName, LedState
from tests.kits import KitFactory


async def test_call_answered_with_a_button_and_ended_with_the_end_button(
    kits: KitFactory,
) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    assert a.controller is not None

    call = await a.controller.place_call("room-b", "video")
    assert call.status == "initiated"
    incoming = await b.wait_for("onIncomingCallReceived")
    assert incoming.data["initiator"]["uid"] == "room-a"
    assert incoming.data["call_type"] == "video"
    assert b.calls.state.value == "ringing"
    assert await b.buttons.observed_led(LedName.RINGING) == LedState.BLINK

    b.buttons.press("mute")  # while ringing, the mute button answers
    accepted = await a.wait_for("onOutgoingCallAccepted")
    assert accepted.data["session_id"] == call.session_id
    await a.wait_for_video_from("room-b")
    await b.wait_for_video_from("room-a")
    await a.wait_to_hear(b.tone_hz)
    assert await a.buttons.observed_led(LedName.IN_CALL) == LedState.ON

    a.buttons.press("end")
    pressed = await a.wait_for("onCallEndButtonPressed")
    ended_message = await b.wait_for("onCallEndedMessageReceived")
    assert ended_message.data["status"] == "ended"
    for kit in (a, b):
        ended = await kit.wait_for("onCallEnded")
        assert ended.ts >= pressed.ts
    async with asyncio.timeout(5):
        while a.calls.state.value != "idle" or b.calls.state.value != "idle":
            await asyncio.sleep(0.02)
    assert a.calls.active_call is None
    assert b.calls.active_call is None
    assert await a.buttons.observed_led(LedName.IN_CALL) == LedState.OFF
    log = await a.calls._api.calls(a.auth_token)
    assert log[0].session_id == call.session_id
    assert log[0].status == "ended"


async def test_the_end_button_rejects_a_ringing_call(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    assert a.controller is not None
    await a.controller.place_call("room-b", "audio")
    await b.wait_for("onIncomingCallReceived")
    b.buttons.press("end")
    rejected = await a.wait_for("onOutgoingCallRejected")
    assert rejected.data["status"] == "rejected"
    assert a.calls.state.value == "idle"
    assert b.calls.state.value == "idle"
    assert a.calls.session is None


async def test_caller_cancels(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    assert a.controller is not None
    await a.controller.place_call("room-b")
    await b.wait_for("onIncomingCallReceived")
    a.buttons.press("end")  # the caller's end button cancels its outgoing call
    cancelled = await b.wait_for("onIncomingCallCancelled")
    assert cancelled.data["status"] == "cancelled"
    assert b.calls.state.value == "idle"


async def test_busy_and_unanswered(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    c = await kits("room-c", controller=True)
    assert a.controller is not None
    assert c.controller is not None
    await a.controller.place_call("room-b", "audio")
    await b.wait_for("onIncomingCallReceived")
    b.buttons.press("mute")
    await a.wait_for("onOutgoingCallAccepted")
    await a.wait_to_hear(b.tone_hz)

    busy = await c.controller.place_call("room-a")
    assert busy.status == "busy"
    assert (await c.wait_for("onCallBusy")).data["receiver"]["uid"] == "room-a"

    await a.controller.end()
    await b.wait_for("onCallEnded")
    unanswered_call = await c.controller.place_call("room-b")
    unanswered = await c.wait_for("onCallUnanswered", timeout=6)  # ring_timeout is 3 s
    assert unanswered.data["session_id"] == unanswered_call.session_id
    assert (await b.wait_for("onCallUnanswered")).data["status"] == "unanswered"
    assert b.calls.state.value == "idle"


async def test_audio_call_from_the_ringing_flow_is_audio_only(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b", controller=True)
    assert b.controller is not None
    assert a.controller is not None
    await a.controller.place_call("room-b", "audio")
    await b.wait_for("onIncomingCallReceived")
    await b.controller.answer()
    await a.wait_to_hear(b.tone_hz)
    await asyncio.sleep(0.3)
    assert a.view.counts == {}
    assert a.calls.snapshot()["local"]["audio_only"] is True


async def test_ringing_methods_report_refusals(kits: KitFactory) -> None:
    a = await kits("room-a")
    with pytest.raises(CallsError) as err:
        await a.calls.initiate_call("nobody-here")
    assert err.value.code == "unknown-user"
    with pytest.raises(CallsError) as err:
        await a.calls.accept_call("no-such-call")
    assert err.value.code == "unknown-call"
    with pytest.raises(ValueError, match="call_type"):
        await a.calls.initiate_call("room-b", "hologram")  # type: ignore[arg-type]


async def test_with_end_needs_hold_only_a_long_press_ends_the_call(kits: KitFactory) -> None:
    a = await kits("room-a", controller=True)
    b = await kits("room-b")
    assert a.controller is not None
    a.controller.end_needs_hold = True
    await a.controller.start_session("hold")  # as the daemon does: the controller delegates
    await b.join("hold")
    await b.wait_to_hear(a.tone_hz)

    a.buttons.press("end")
    hint = await a.wait_for("onWarning", lambda d: d["code"] == "hold-to-end")
    assert "Hold" in hint.data["message"]
    await asyncio.sleep(0.3)
    assert a.calls.state.value == "active"  # a tap does not hang up

    await a.buttons.long_press("end")
    await b.wait_for("onCallEnded")
    assert a.calls.state.value == "idle"
