"""Our audio to each peer: a sender that stops reading for a while (a busy CPU) finds at
most SEND_QUEUE_FRAMES of it waiting, the newest, not everything since."""

from __future__ import annotations

import asyncio

from appliance.media.local import SEND_QUEUE_FRAMES, LocalMedia
from hal.audio.base import FRAME_SAMPLES
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
