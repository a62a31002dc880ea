"""Backoffs and retries follow their schedules: checked with a recording sleep, not by
waiting, so a change that drops a backoff (or its jitter) fails here."""

from __future__ import annotations

import asyncio

from appliance.media.routes import RETRY_FIRST, RETRY_MAX, AudioRouter
from hal.audio.base import AudioError, Route
from hal.audio.fake import FakeAudioOutput
from tests.clock import RecordingSleep


async def test_a_failed_audio_route_is_retried_from_1_s_backing_off_to_30_s() -> None:
    speaker = FakeAudioOutput(Route.SPEAKER)
    earpiece = FakeAudioOutput(Route.EARPIECE)
    modes: list[list[Route]] = []
    sleep = RecordingSleep()
    router = AudioRouter(
        {Route.SPEAKER: speaker, Route.EARPIECE: earpiece},
        modes.append,
        lambda route: None,
        sleep=sleep,
    )
    try:
        earpiece.fail()
        await router.output_failed(earpiece, AudioError("audio earpiece", "device is gone"))
        assert router.available == [Route.SPEAKER]
        delays = await sleep.until(9)
        assert (RETRY_FIRST, RETRY_MAX) == (1.0, 30.0)
        assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        assert earpiece.opens == 0  # each try failed

        # The device works again: the next try opens it and the route is offered again.
        earpiece.restore()
        async with asyncio.timeout(10):
            while Route.EARPIECE not in router.available:
                await asyncio.sleep(0)
        assert earpiece.opens == 1
        assert modes[-1] == [Route.SPEAKER, Route.EARPIECE]
        tries = len(sleep.delays)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(sleep.delays) == tries  # the retry stopped once it worked
    finally:
        await router.close()
