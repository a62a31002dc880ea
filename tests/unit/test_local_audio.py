"""Our audio to each peer: a sender that stops reading for a while (a busy CPU) finds at
most SEND_QUEUE_FRAMES of it waiting, the newest, not everything since; slow trips to the
room audio's worker do not cost blocks (they go in batches)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from appliance.audio.engines import Processed
from appliance.media.local import SEND_QUEUE_FRAMES, LocalMedia
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm
from hal.audio.fake import FakeMicrophone
from hal.camera.base import VideoFormat


async def test_a_sender_that_fell_behind_gets_the_newest_audio_not_a_backlog() -> None:
    local = LocalMedia([], FakeMicrophone(440.0), VideoFormat(), None, lambda *w: None)
    await local.start(audio_muted=False, video_enabled=False, video_paused=False)
    try:
        slow = local.audio_track()
        await slow.recv()
        await asyncio.sleep(1.0)  # the slow peer's sender reads nothing for a second
        fresh = local.audio_track()
        newest = (await fresh.recv()).pts
        caught_up = (await slow.recv()).pts
        assert newest - caught_up <= (SEND_QUEUE_FRAMES + 1) * FRAME_SAMPLES
        assert newest - caught_up >= 0
    finally:
        await local.stop()
    assert slow.readyState == fresh.readyState == "ended"


class SlowTrips:
    """Room audio whose every trip to its worker takes 100 ms of loop time (a busy CPU's
    thread hand-offs): a pump that took one block per trip would send 10 blocks a second."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def process_blocks(self, blocks: Sequence[tuple[Pcm, float]]) -> list[Processed]:
        self.batches.append(len(blocks))
        await asyncio.sleep(0.1)
        return [Processed(pcm, None) for pcm, _ in blocks]


async def test_slow_trips_to_the_room_audio_still_send_every_block() -> None:
    processing = SlowTrips()
    local = LocalMedia(
        [], FakeMicrophone(440.0), VideoFormat(), None, lambda *w: None, processing=processing
    )
    track = local.audio_track()
    await local.start(audio_muted=False, video_enabled=False, video_paused=False)
    received: list[int] = []

    async def drain() -> None:
        while True:
            received.append((await track.recv()).pts)

    reader = asyncio.create_task(drain())
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.sleep(2.0)
    finally:
        elapsed = loop.time() - started
        reader.cancel()
        await local.stop()
    blocks = elapsed / (FRAME_SAMPLES / SAMPLE_RATE)
    assert len(received) >= 0.7 * blocks, (len(received), blocks, processing.batches)
    # In order, and continuous: nothing was skipped to keep up.
    assert all(b - a == FRAME_SAMPLES for a, b in itertools.pairwise(received))
    assert max(processing.batches) > 1 and local.blocks_dropped == 0
