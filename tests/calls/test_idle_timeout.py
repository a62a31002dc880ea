"""Alone for the idle period: a warning, then the session ends with on_session_timeout."""

import asyncio

from tests.kits import KitFactory


async def test_alone_for_the_idle_period_ends_the_session(kits: KitFactory) -> None:
    a = await kits("room-a")
    await a.join("empty-room", idle_timeout_period=2)
    warning = await a.wait_for("onSessionTimeoutWarning")
    assert warning.data["seconds_left"] == 2  # the period is shorter than the 60 s lead
    timeout = await a.wait_for("onSessionTimeout", timeout=5)
    assert timeout.ts - warning.ts >= 1.8
    assert a.calls.session is None
    assert not a.microphone.is_open
    assert not a.named("onCallEnded")


async def test_company_stops_the_countdown(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("meet", idle_timeout_period=2)
    await b.join("meet", idle_timeout_period=2)
    await asyncio.sleep(2.5)
    assert not a.named("onSessionTimeout")
    assert a.calls.session is not None


async def test_alone_after_the_others_left_a_call_of_three_counts_down(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    c = await kits("room-c")
    for kit in (a, b, c):
        await kit.join("three", idle_timeout_period=2)
    await a.wait_for_video_from("room-b")
    await a.wait_for_video_from("room-c")
    await b.calls.end_session()
    assert a.calls.session is not None  # a call of three goes on with two
    await c.calls.end_session()
    warning = await a.wait_for("onSessionTimeoutWarning")
    assert warning.data["seconds_left"] == 2
    await a.wait_for("onSessionTimeout", timeout=5)
    assert a.calls.session is None
    assert not a.named("onCallEnded")  # it timed out; nobody ended it
