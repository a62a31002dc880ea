"""A process that records its own fake camera and microphone with the call recorder until
it is killed (``test_storage``): prints the recording's path, then ``recording`` once the
recorder runs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import appliance.calls  # noqa: F401 (first, as in the daemon: the media layer imports it)
from appliance.media.local import LocalMedia
from appliance.media.recorder import Recorder
from appliance.media.remote import AudioMixer, RemoteVideo
from hal.camera.base import VideoFormat
from hal.config import HalConfig
from hal.registry import KitIdentity, build_hardware

TONE_HZ = 700.0


@contextlib.asynccontextmanager
async def fake_sources() -> AsyncIterator[tuple[LocalMedia, AudioMixer]]:
    """A running local camera and microphone (fake) and a mixer with no far end."""
    config = HalConfig.model_validate({"backend": "fake", "audio": {"fake_tone_hz": TONE_HZ}})
    hardware = build_hardware(config, KitIdentity("recorder", "Recorder"))
    local = LocalMedia(
        hardware.cameras,
        hardware.microphone,
        VideoFormat(320, 240, 15),
        None,
        lambda code, device, message: print(code, device, message, file=sys.stderr),
    )
    await local.start(audio_muted=False, video_enabled=True, video_paused=False)
    mixer = AudioMixer(on_output_failed=lambda output, err: None)
    mixer.start()
    try:
        yield local, mixer
    finally:
        await mixer.stop()
        await local.stop()
        await hardware.close()


async def record(directory: Path) -> None:
    def failed(recorder: Recorder, err: Exception) -> None:
        print("failed", err, file=sys.stderr, flush=True)

    async with fake_sources() as (local, mixer):
        recorder = Recorder(directory, "crash", local, mixer, RemoteVideo(None), on_failure=failed)
        await recorder.start()
        print(recorder.path, flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1])))
