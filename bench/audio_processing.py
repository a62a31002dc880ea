"""Room audio: CPU-seconds per call-minute of the audio processing at 48 kHz (WebRTC
AEC3 + noise suppression + AGC2 on the speaker, the voice detector alone on headphones,
speexdsp's echo canceller, the mixer's limiter), measured on the processing thread while
a call runs through the real stage in a simulated room; with the echo return loss
enhancement and double-talk correlation each reaches there, and how double talk fares as
the loudspeaker's echo gets louder against the near-end talker."""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.engines import Backend, Engine, Libraries, Processed
from appliance.audio.limiter import SoftLimiter
from appliance.audio.room import RoomAudio
from appliance.audio.settings import RoomAudioConfig
from bench.common import Result, Target
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm, Route
from hal.audio.pcm import tone
from tests.audio.room import (
    RoomModel,
    Scenario,
    SimulatedRoom,
    build_scenario,
    correlation,
    erle_db,
    level_dbfs,
    run_call,
    seconds,
    without_gain,
)

TARGET_CPU_PER_MINUTE = 3.0  # 5 % of one core here; a Pi 4 core is some 4x slower


class Timed:
    """An engine whose CPU time (on the thread that runs it) is added up."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.name = engine.name
        self.cancels_echo = engine.cancels_echo
        self.cpu = 0.0

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        start = time.thread_time()
        try:
            return self._engine.process(near, far)
        finally:
            self.cpu += time.thread_time() - start

    def set_delay_ms(self, delay_ms: int) -> None:
        self._engine.set_delay_ms(delay_ms)


def timed(base: Libraries, engines: list[Timed]) -> Libraries:
    """``base``, with every engine it makes timed and listed in ``engines``."""

    class TimedLibraries(Libraries):
        def engine(self, config: RoomAudioConfig, *, processing: bool) -> Engine | None:
            engine = super().engine(config, processing=processing)
            if engine is None:
                return None
            engines.append(Timed(engine))
            return engines[-1]

    return TimedLibraries(base.backend, base.module, base.reason)


async def one_call(
    scenario: Scenario, libraries: Libraries, route: Route, model: RoomModel
) -> dict[str, Any]:
    engines: list[Timed] = []
    audio = RoomAudio(RoomAudioConfig(), libraries=timed(libraries, engines))
    stage = audio.start_call()
    room = SimulatedRoom(model.impulse_response())
    record = await run_call(stage, scenario.far, scenario.near + scenario.noise, room, route)
    await audio.end_call(stage)
    duration = len(record.output) / SAMPLE_RATE
    cpu = sum(engine.cpu for engine in engines)
    delay = audio.delays.get(route)
    return {
        "engine": " / ".join(engine.name for engine in engines),
        "cpu_per_minute": cpu / duration * 60,
        "erle": min(erle_db(record.echo, without_gain(record), s) for s in scenario.far_only),
        "erle_raw": min(erle_db(record.echo, record.output, s) for s in scenario.far_only),
        "double_talk": min(
            correlation(record.output, scenario.near, s) for s in scenario.double_talk
        ),
        "echo_to_near_db": level_dbfs(record.echo[scenario.far_only[0]])
        - level_dbfs(scenario.near[scenario.double_talk[0]]),
        "delay_ms": delay.delay_ms if delay else None,
    }


def limiter_cpu_per_minute(seconds_of_audio: float) -> float:
    limiter = SoftLimiter()
    frames = round(seconds_of_audio * SAMPLE_RATE / FRAME_SAMPLES)
    mixes = [np.zeros(FRAME_SAMPLES, np.int32) for _ in range(frames)]
    for hz in (400.0, 510.0, 650.0):
        for mix, pcm in zip(mixes, tone(hz, level_dbfs=-3, frames=frames), strict=True):
            mix += pcm
    start = time.thread_time()
    for mix in mixes:
        limiter.process(mix)
    return (time.thread_time() - start) / seconds_of_audio * 60


def shorten(scenario: Scenario, until: float) -> Scenario:
    cut = seconds(0, until)
    keep = lambda spans: tuple(s for s in spans if s.stop <= cut.stop)  # noqa: E731
    return Scenario(
        scenario.far[cut],
        scenario.near[cut],
        scenario.noise[cut],
        keep(scenario.far_only),
        keep(scenario.double_talk),
        keep(scenario.near_only),
    )


async def run(quick: bool) -> Result:
    result = Result(
        "audio_processing",
        "Room audio: CPU per call-minute at 48 kHz, echo cancellation and double talk",
        columns=[
            "stage",
            "route",
            "CPU-s per call-minute",
            "% of one core",
            "ERLE dB (AGC gain out)",
            "ERLE dB (raw)",
            "double-talk correlation",
            "measured delay ms",
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        scenario = build_scenario(Path(tmp))
    if quick:
        scenario = shorten(scenario, 17.0)  # one far-only stretch, one double talk
    webrtc = Libraries.load()
    speex = Libraries(Backend.SPEEX, importlib.import_module("speexdsp"))
    room = RoomModel()
    runs = [
        ("webrtc", webrtc, Route.SPEAKER),
        ("webrtc", webrtc, Route.HEADPHONES),
        ("speexdsp", speex, Route.SPEAKER),
    ]
    for label, libraries, route in runs:
        figures = await one_call(scenario, libraries, route, room)
        result.rows.append(
            [
                f"{label}: {figures['engine']}",
                route.value,
                figures["cpu_per_minute"],
                figures["cpu_per_minute"] / 60 * 100,
                figures["erle"],
                figures["erle_raw"],
                figures["double_talk"],
                figures["delay_ms"] if figures["delay_ms"] is not None else "-",
            ]
        )
        if label == "webrtc" and route is Route.SPEAKER:
            result.figures.update(
                cpu_per_call_minute=figures["cpu_per_minute"],
                erle_db=figures["erle"],
                erle_raw_db=figures["erle_raw"],
                double_talk_correlation=figures["double_talk"],
            )
            result.targets += [
                Target(
                    f"WebRTC stage <= {TARGET_CPU_PER_MINUTE} CPU-s per call-minute",
                    figures["cpu_per_minute"],
                    figures["cpu_per_minute"] <= TARGET_CPU_PER_MINUTE,
                ),
                Target("ERLE >= 25 dB", figures["erle"], figures["erle"] >= 25),
                Target(
                    "double-talk correlation >= 0.8",
                    figures["double_talk"],
                    figures["double_talk"] >= 0.8,
                ),
            ]
    limiter = limiter_cpu_per_minute(10.0 if quick else 60.0)
    result.rows.append(
        ["mixer soft limiter", "any", limiter, limiter / 60 * 100, "-", "-", "-", "-"]
    )
    result.figures["limiter_cpu_per_call_minute"] = limiter
    if not quick:
        result.notes.append("Double talk as the echo gets louder (WebRTC stage, same room):")
        for direct_db in (-30.0, -24.0, -12.0, -6.0):
            model = RoomModel(direct_db=direct_db)
            figures = await one_call(scenario, webrtc, Route.SPEAKER, model)
            result.notes.append(
                f"echo {figures['echo_to_near_db']:+.0f} dB against the near-end talker: "
                f"ERLE {figures['erle']:.1f} dB (raw {figures['erle_raw']:.1f}), "
                f"double-talk correlation {figures['double_talk']:.2f}"
            )
    result.notes.append(
        "CPU is the processing thread's own time (time.thread_time) for the engine calls; "
        "a 32 s espeak-ng call (far end from 1.5 s, double talk at 12 s and 20 s) through a "
        "room 37 ms away with a -18 dB direct path and a 0.3 s reverb tail."
    )
    return result
