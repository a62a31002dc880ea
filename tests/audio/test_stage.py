"""The processing stage's plumbing: which library it loads (and says so when it must fall
back), a library that fails, a CPU too slow for it, what the kit reports, and the voice
probability in the level meter."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import numpy as np
import pytest

from appliance.audio import engines
from appliance.audio.delay import EchoDelayStore
from appliance.audio.engines import Backend, Libraries, Processed
from appliance.audio.room import RoomAudio
from appliance.audio.settings import RoomAudioConfig
from appliance.audio.stage import ProcessingStage
from appliance.media.levels import LevelMeter
from hal.audio.base import FRAME_SAMPLES, Pcm, Route
from hal.audio.pcm import tone


def without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> ModuleType:
        if name in missing:
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(engines.importlib, "import_module", import_module)


def test_webrtc_is_preferred() -> None:
    libraries = Libraries.load()
    assert libraries.backend is Backend.WEBRTC
    engine = libraries.engine(RoomAudioConfig(), processing=True)
    assert engine is not None and engine.name == "webrtc AEC3+NS+AGC2" and engine.cancels_echo


def test_without_webrtc_the_kit_says_it_falls_back_to_speexdsp(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    without(monkeypatch, "pywebrtc_audio")
    with caplog.at_level(logging.WARNING):
        libraries = Libraries.load()
    assert libraries.backend is Backend.SPEEX
    assert "Falling back to speexdsp's echo canceller" in caplog.text
    assert "pywebrtc_audio" in libraries.reason
    assert libraries.engine(RoomAudioConfig(), processing=True) is not None
    # speexdsp only cancels echo: nothing to run where processing is off.
    assert libraries.engine(RoomAudioConfig(), processing=False) is None


def test_without_any_library_the_kit_says_so_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    without(monkeypatch, "pywebrtc_audio", "speexdsp")
    with caplog.at_level(logging.ERROR):
        libraries = Libraries.load()
    assert libraries.backend is Backend.NONE
    assert "NO AUDIO PROCESSING" in caplog.text
    assert RoomAudio(libraries=libraries).status()["backend_problem"] == libraries.reason


async def test_a_failing_library_leaves_the_microphone_unprocessed_and_warns() -> None:
    class Broken:
        name = "broken"
        cancels_echo = True

        def process(self, near: object, far: object) -> object:
            raise RuntimeError("segfault avoided")

        def set_delay_ms(self, delay_ms: int) -> None:
            pass

    class BrokenLibraries(Libraries):
        def engine(self, config: RoomAudioConfig, *, processing: bool) -> engines.Engine:
            return Broken()

    warnings: list[tuple[str, str, str]] = []
    audio = RoomAudio(libraries=BrokenLibraries(Backend.WEBRTC, engines))
    stage = audio.start_call(lambda *w: warnings.append(w))
    pcm = next(tone(500, frames=1))
    stage.played(np.zeros(FRAME_SAMPLES, np.int16), None, 0.0)
    first = await stage.process(pcm, 0.02)
    second = await stage.process(pcm, 0.04)
    await audio.end_call(stage)
    assert np.array_equal(first.pcm, pcm) and np.array_equal(second.pcm, pcm)
    assert warnings == [("audio-processing-failed", "audio", "broken: segfault avoided")]


async def test_status_shows_the_route_in_use_and_processing_per_route() -> None:
    audio = RoomAudio(RoomAudioConfig(processing="auto", routes={Route.EARPIECE: False}))
    status = audio.status()
    assert status["backend"] == "webrtc" and status["call"] is None
    assert status["processing"] == {
        "SPEAKER": True,
        "EARPIECE": False,
        "HEADPHONES": False,
        "BLUETOOTH": False,
    }
    stage = audio.start_call()
    stage.played(np.zeros(FRAME_SAMPLES, np.int16), Route.HEADPHONES, 0.0)
    await stage.process(next(tone(500, frames=1)), 0.02)
    call = audio.status()["call"]
    assert call["route"] == "HEADPHONES" and call["voice_probability"] is not None
    await audio.end_call(stage)
    assert audio.status()["call"] is None
    assert RoomAudioConfig(processing="off").processes(Route.SPEAKER) is False
    assert RoomAudioConfig(processing="on").processes(Route.BLUETOOTH) is True


def test_the_level_meter_uses_the_voice_probability() -> None:
    loud_noise = np.random.default_rng(1).normal(0, 3000, FRAME_SAMPLES).astype(np.int16)
    noisy = LevelMeter()
    for _ in range(20):
        noisy.add(loud_noise, voice=0.05)
    assert noisy.dbfs > -30 and not noisy.speaking  # loud, but not a voice
    talking = LevelMeter()
    for _ in range(20):
        talking.add(loud_noise, voice=0.95)
    assert talking.speaking
    for _ in range(40):
        talking.add(None)  # muted
    assert not talking.speaking
    levels_only = LevelMeter()
    for _ in range(5):
        levels_only.add(loud_noise)
    assert levels_only.voice is None and levels_only.speaking


class CostlyEngine:
    """Halves what it processes (so processed audio is told from raw) and costs the worker
    ``cost_s`` of CPU per block on the injected CPU clock."""

    name = "costly"
    cancels_echo = False

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.cpu = 0.0

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        self.cpu += self.cost_s
        return Processed((near // 2).astype(np.int16), None)

    def set_delay_ms(self, delay_ms: int) -> None:
        pass


async def processed_share(cost_s: float, blocks: int) -> tuple[list[bool], list[tuple[str, ...]]]:
    """Which of ``blocks`` captured blocks came out processed, and the warnings."""
    engine = CostlyEngine(cost_s)

    class OneEngine(Libraries):
        def engine(self, config: RoomAudioConfig, *, processing: bool) -> engines.Engine:
            return engine

    warnings: list[tuple[str, ...]] = []
    stage = ProcessingStage(
        RoomAudioConfig(),
        OneEngine(Backend.WEBRTC, engines),
        EchoDelayStore(None),
        lambda *w: warnings.append(w),
        cpu_clock=lambda: engine.cpu,
    )
    pcm = np.full(FRAME_SAMPLES, 1000, np.int16)
    processed: list[bool] = []
    for k in range(0, blocks, 5):  # in batches, as a pump catching up gives them
        batch = [(pcm, (k + i) * 0.02) for i in range(5)]
        processed += [bool(p.pcm[0] == 500) for p in await stage.process_blocks(batch)]
    assert stage.too_slow == (not all(processed))
    await stage.close()
    return processed, warnings


async def test_a_cpu_that_cannot_keep_up_sends_the_microphone_unprocessed() -> None:
    # 30 ms of CPU for each 20 ms block: two whole seconds over budget, then given up.
    processed, warnings = await processed_share(0.030, 300)
    given_up_at = processed.index(False)
    assert 100 <= given_up_at <= 110 and not any(processed[given_up_at:])
    assert [w[0] for w in warnings] == ["audio-processing-too-slow"]
    assert "1500 ms of CPU a second of audio" in warnings[0][2]


async def test_processing_that_keeps_up_goes_on() -> None:
    # 10 ms a block is half the audio's time: within budget for good.
    processed, warnings = await processed_share(0.010, 300)
    assert all(processed) and warnings == []
