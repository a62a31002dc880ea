"""Ringtones in real ringing flows between two kits (session server, fake hardware): the
callee's speaker rings, the caller's plays the ring-back tone, and both stop when the call
is answered, rejected, cancelled or left unanswered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from hal.audio.base import SAMPLE_RATE, Route
from hal.audio.pcm import dominant_frequency
from tests.kits import Kit, KitFactory

RING_HZ = 880.0
RINGBACK_HZ = 425.0


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def hears_tone(kit: Kit, hz: float) -> None:
    """The first 0.2 s the kit's speaker played (it was silent before) is ``hz``."""
    speaker = kit.output(Route.SPEAKER)
    await until(lambda: speaker.total_samples >= 0.3 * SAMPLE_RATE)
    first = speaker.recent(speaker.total_samples / SAMPLE_RATE)[: round(0.2 * SAMPLE_RATE)]
    assert dominant_frequency(first) == pytest.approx(hz, abs=5)


async def falls_silent(kit: Kit) -> None:
    speaker = kit.output(Route.SPEAKER)
    await until(lambda: kit.calls.ringer.tone is None and not speaker.is_open)
    written = speaker.total_samples
    await asyncio.sleep(0.2)
    assert speaker.total_samples == written


async def ringing_pair(kits: KitFactory) -> tuple[Kit, Kit]:
    caller = await kits("room-a", controller=True)
    callee = await kits("room-b", controller=True)
    await caller.calls.initiate_call("room-b", "audio")
    await hears_tone(caller, RINGBACK_HZ)
    await hears_tone(callee, RING_HZ)
    return caller, callee


async def test_answering_stops_both_tones_and_the_call_is_heard(kits: KitFactory) -> None:
    caller, callee = await ringing_pair(kits)
    assert callee.controller is not None
    await callee.controller.answer()
    for kit, other, played in ((caller, callee, RINGBACK_HZ), (callee, caller, RING_HZ)):
        await until(lambda kit=kit: kit.calls.ringer.tone is None)
        speaker = kit.output(Route.SPEAKER)
        mark = speaker.total_samples
        await kit.wait_to_hear(other.tone_hz)
        # Past the set-up chirp, what plays is the other kit, and no ring at all.
        await until(lambda s=speaker, m=mark: s.total_samples >= m + 1.5 * SAMPLE_RATE)
        last = speaker.recent(0.5)
        spectrum = np.abs(np.fft.rfft(last * np.hanning(len(last))))  # 2 Hz per bin
        assert spectrum[round(played / 2)] < spectrum[round(other.tone_hz / 2)] / 100


@pytest.mark.parametrize("who", ["callee rejects", "caller cancels"])
async def test_declining_stops_both_tones(kits: KitFactory, who: str) -> None:
    caller, callee = await ringing_pair(kits)
    kit = callee if who == "callee rejects" else caller
    assert kit.controller is not None
    await kit.controller.decline()
    await falls_silent(caller)
    await falls_silent(callee)


async def test_an_unanswered_call_stops_ringing_at_the_server_s_timeout(kits: KitFactory) -> None:
    caller, callee = await ringing_pair(kits)  # the test server gives up after 3 s
    await caller.wait_for("onCallUnanswered", timeout=10)
    await falls_silent(caller)
    await falls_silent(callee)
