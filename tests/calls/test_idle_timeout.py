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
