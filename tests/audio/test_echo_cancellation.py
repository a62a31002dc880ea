"""The acceptance test of the room audio: an echo path built in software (far-end speech
from espeak-ng played into a room with a delay, an attenuation and a reverb tail), plus a
near-end talker and noise, through the real processing stage frame by frame.

ERLE is the echo's power at the microphone over the power sent, on stretches where only
the far end talks, after the canceller has converged. The gain control raises the
near-end talker and whatever echo is left alike (about 15 dB here); ERLE is taken with its
reported gain divided out, and the raw figure must still show the echo well under it.
"""

from __future__ import annotations

import importlib

import numpy as np

from appliance.audio.engines import Backend, Libraries
from appliance.audio.room import RoomAudio
from appliance.audio.settings import RoomAudioConfig
from hal.audio.base import FRAME_SAMPLES, Route
from tests.audio.room import (
    CallRecording,
    RoomModel,
    Scenario,
    SimulatedRoom,
    correlation,
    erle_db,
    run_call,
    without_gain,
)

ROOM = RoomModel()  # 37 ms, -18 dB direct path, reverb 12 dB under it, RT60 0.3 s


async def call_through(
    scenario: Scenario, libraries: Libraries, route: Route = Route.SPEAKER
) -> tuple[CallRecording, RoomAudio]:
    audio = RoomAudio(RoomAudioConfig(), libraries=libraries)
    stage = audio.start_call()
    try:
        record = await run_call(
            stage,
            scenario.far,
            scenario.near + scenario.noise,
            SimulatedRoom(ROOM.impulse_response()),
            route,
        )
    finally:
        await audio.end_call(stage)
    return record, audio


def frames_in(span: slice) -> range:
    return range(span.start // FRAME_SAMPLES, span.stop // FRAME_SAMPLES)


async def test_webrtc_stage_cancels_the_room_echo_and_keeps_double_talk(
    scenario: Scenario,
) -> None:
    libraries = Libraries.load()
    assert libraries.backend is Backend.WEBRTC, libraries.reason
    record, audio = await call_through(scenario, libraries)

    # The set-up chirp found the room's delay, and the canceller was given it.
    measured = audio.delays.get(Route.SPEAKER)
    assert measured is not None
    assert abs(measured.delay_ms - ROOM.delay * 1000) < 0.5

    erle = [erle_db(record.echo, without_gain(record), span) for span in scenario.far_only]
    raw = [erle_db(record.echo, record.output, span) for span in scenario.far_only]
    assert min(erle) >= 25.0, f"ERLE {erle} dB (raw {raw})"
    assert min(raw) >= 20.0, f"raw ERLE {raw} dB"

    double_talk = [correlation(record.output, scenario.near, s) for s in scenario.double_talk]
    assert min(double_talk) >= 0.8, f"double-talk correlation {double_talk}"
    alone = correlation(record.output, scenario.near, scenario.near_only[0])
    assert alone >= 0.9

    # The voice probability (the active speaker) rises for the near-end talker, not for
    # the far end's echo.
    voice = np.array([v if v is not None else np.nan for v in record.voice])
    near_voice = np.nanmean([voice[i] for i in frames_in(scenario.near_only[0])])
    echo_voice = np.nanmean([voice[i] for s in scenario.far_only for i in frames_in(s)])
    assert near_voice > 0.5 > echo_voice, (near_voice, echo_voice)


async def test_speexdsp_fallback_cancels_the_echo_linearly(scenario: Scenario) -> None:
    speex = Libraries(Backend.SPEEX, importlib.import_module("speexdsp"))
    record, audio = await call_through(scenario, speex)

    assert audio.delays.get(Route.SPEAKER) is not None
    # No residual suppressor and no noise suppressor: less ERLE, untouched double talk.
    erle = [erle_db(record.echo, record.output, span) for span in scenario.far_only]
    assert min(erle) >= 15.0, f"ERLE {erle} dB"
    double_talk = [correlation(record.output, scenario.near, s) for s in scenario.double_talk]
    assert min(double_talk) >= 0.9, f"double-talk correlation {double_talk}"
    assert all(v is None for v in record.voice)


async def test_headphones_are_not_processed(scenario: Scenario) -> None:
    """No acoustic echo on headphones: the microphone goes out as it is, no chirp plays,
    and the voice detector still runs for the active speaker."""
    short = slice(0, 3 * 48_000)
    cut = Scenario(scenario.far[short], scenario.near[short], scenario.noise[short], (), (), ())
    record, audio = await call_through(cut, Libraries.load(), Route.HEADPHONES)

    assert np.array_equal(record.output, record.microphone)
    assert audio.delays.all() == {}
    assert all(v is not None for v in record.voice)
