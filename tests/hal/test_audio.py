"""Fake microphone and outputs: the tone, pacing, recording, presence, failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hal.audio.base import FRAME_SAMPLES, AudioError, AudioOutput, Microphone, Route
from hal.audio.fake import (
    CAPTURE_BUFFER_FRAMES,
    FRAME_SECONDS,
    FakeAudioOutput,
    FakeMicrophone,
    create,
    kit_tone_hz,
)
from hal.audio.pcm import dominant_frequency, rms_dbfs, tone
from hal.config import HalConfig
from hal.kit import KitIdentity
from tests.hal.helpers import settle


def test_kit_tones_are_stepped_stable_and_differ_between_kits() -> None:
    tones = {uid: kit_tone_hz(uid) for uid in ("room-a", "room-b", "room-c", "kit-a")}
    assert all(300 <= hz <= 1250 and hz % 50 == 0 for hz in tones.values())
    assert len(set(tones.values())) == len(tones)
    assert kit_tone_hz("room-a") == tones["room-a"]


def test_create_uses_the_kit_tone_or_the_configured_one() -> None:
    devices = create(HalConfig(), KitIdentity("room-b", "Room B"))
    assert isinstance(devices.microphone, FakeMicrophone)
    assert devices.microphone.tone_hz == kit_tone_hz("room-b")
    configured = create(
        HalConfig.model_validate({"audio": {"fake_tone_hz": 777}}), KitIdentity("x", "X")
    )
    assert isinstance(configured.microphone, FakeMicrophone)
    assert configured.microphone.tone_hz == 777
    assert set(devices.outputs) == set(Route)
    assert isinstance(devices.microphone, Microphone)
    assert all(isinstance(output, AudioOutput) for output in devices.outputs.values())
    present = {route: output.present for route, output in devices.outputs.items()}
    assert present == {
        Route.SPEAKER: True,
        Route.EARPIECE: True,
        Route.HEADPHONES: False,
        Route.BLUETOOTH: False,
    }


async def test_microphone_is_paced_and_plays_a_continuous_tone() -> None:
    microphone = FakeMicrophone(650)
    await microphone.open()
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = []
    while loop.time() - start < 1.0:
        frames.append(await microphone.read())
    assert 42 <= len(frames) <= 52
    assert all(frame.dtype == np.int16 and frame.shape == (FRAME_SAMPLES,) for frame in frames)
    pcm = np.concatenate(frames)
    assert dominant_frequency(pcm) == pytest.approx(650, abs=1)
    assert rms_dbfs(pcm) == pytest.approx(-10, abs=0.2)
    # Continuous phase: identical to one unbroken tone of the same length.
    assert np.array_equal(pcm, np.concatenate(list(tone(650, frames=len(frames)))))
    microphone.set_tone(1100)
    assert dominant_frequency(await microphone.read()) == pytest.approx(1100, abs=5)
    await microphone.close()
    assert (microphone.opens, microphone.closes, microphone.frames_read) == (1, 1, len(frames) + 1)


async def test_microphone_fail_and_restore() -> None:
    microphone = FakeMicrophone(400)
    await microphone.open()
    microphone.fail()
    assert not microphone.is_open
    with pytest.raises(AudioError):
        await microphone.read()
    with pytest.raises(AudioError):
        await microphone.open()
    microphone.restore()
    await microphone.open()
    assert len(await microphone.read()) == FRAME_SAMPLES


async def test_a_reader_that_falls_behind_loses_frames_counted_as_xruns_over_every_open() -> (
    None
):
    microphone = FakeMicrophone(400)
    await microphone.open()
    await microphone.read()
    await asyncio.sleep((CAPTURE_BUFFER_FRAMES + 5) * FRAME_SECONDS)  # a stalled reader
    await microphone.read()
    lost = microphone.xruns
    assert lost >= 5 and microphone.overruns == lost
    await microphone.close()
    await microphone.open()  # a new open starts its own count; the total stays
    assert microphone.overruns == 0 and microphone.xruns == lost


async def test_output_records_exactly_what_was_written() -> None:
    output = FakeAudioOutput(Route.SPEAKER)
    await output.open()
    written = list(tone(523, frames=50))
    for frame in written:
        await output.write(frame)
    everything = np.concatenate(written)
    assert output.total_samples == len(everything)
    assert np.array_equal(output.recent(1.0), everything)
    assert np.array_equal(output.recent(0.5), everything[-24_000:])
    assert np.array_equal(output.recent(5.0), everything)  # less was played than asked
    assert output.writes == 50


async def test_output_buffer_stays_bounded() -> None:
    output = FakeAudioOutput(Route.EARPIECE)
    await output.open()
    capacity = output.capacity_samples
    assert capacity == 60 * 48_000
    second = 48_000
    for index in range(63):  # 63 s of audio, one second per write, each second its own value
        await output.write(np.full(second, index, np.int16))
    assert output.capacity_samples == capacity
    assert output.total_samples == 63 * second
    kept = output.recent(120)
    assert len(kept) == capacity
    assert np.array_equal(kept[:second], np.full(second, 3, np.int16))
    assert np.array_equal(kept[-second:], np.full(second, 62, np.int16))

    small = FakeAudioOutput(Route.SPEAKER, keep_seconds=0.01)  # 480 samples
    await small.open()
    await small.write(np.arange(1000, dtype=np.int16))
    await small.write(np.arange(1000, 1300, dtype=np.int16))
    assert np.array_equal(small.recent(1), np.arange(820, 1300, dtype=np.int16))


async def test_presence_callbacks_run_on_the_loop() -> None:
    output = FakeAudioOutput(Route.HEADPHONES, present=False)
    seen: list[bool] = []
    unsubscribe = output.on_presence_changed(seen.append)
    output.set_present(True)
    assert output.present
    assert seen == []  # delivered by the loop, not inside set_present
    await settle()
    assert seen == [True]
    output.set_present(True)  # no change, no callback
    output.set_present(False)
    await settle()
    assert seen == [True, False]
    unsubscribe()
    output.set_present(True)
    await settle()
    assert seen == [True, False]


async def test_failed_output_raises_on_write_until_restored() -> None:
    output = FakeAudioOutput(Route.SPEAKER)
    await output.open()
    output.fail()
    with pytest.raises(AudioError):
        await output.write(np.zeros(960, np.int16))
    output.restore()
    await output.write(np.zeros(960, np.int16))
    assert output.total_samples == 960


async def test_bluetooth_sink_refuses_writes_without_a_headset() -> None:
    output = FakeAudioOutput(Route.BLUETOOTH, present=False)
    with pytest.raises(AudioError):
        await output.open()
    output.set_present(True)
    await output.open()
    await output.write(np.zeros(960, np.int16))
    output.set_present(False)
    with pytest.raises(AudioError):
        await output.write(np.zeros(960, np.int16))
    headphones = FakeAudioOutput(Route.HEADPHONES, present=False)  # a jack: plays regardless
    await headphones.open()
    await headphones.write(np.zeros(960, np.int16))


async def test_output_refuses_misuse() -> None:
    output = FakeAudioOutput(Route.SPEAKER)
    with pytest.raises(AudioError):
        await output.write(np.zeros(960, np.int16))  # not open
    await output.open()
    with pytest.raises(ValueError, match="int16"):
        await output.write(np.zeros(960, np.float32))  # type: ignore[arg-type]
    await output.close()
    await output.close()
    assert (output.opens, output.closes) == (1, 1)
