"""Echo delay: the chirp, finding it in a capture, measuring a route through a room, and
keeping the result per route."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.delay import (
    CHIRP_SECONDS,
    MIN_CONFIDENCE,
    EchoDelayStore,
    chirp,
    locate,
    new_delay,
)
from appliance.audio.engines import Libraries
from appliance.audio.room import RoomAudio
from appliance.audio.settings import RoomAudioConfig
from hal.audio.base import SAMPLE_RATE, Route
from hal.audio.pcm import dominant_frequency, rms_dbfs, tone
from tests.audio.room import RoomModel, SimulatedRoom, run_call

SILENT_SECONDS = 1.6  # long enough for the set-up chirp and its echo


def test_chirp_sweeps_upwards_and_fades() -> None:
    sound = chirp()
    assert len(sound) == round(CHIRP_SECONDS * SAMPLE_RATE)
    assert abs(int(sound[0])) < 50 and abs(int(sound[-1])) < 50
    quarter = len(sound) // 4
    low = dominant_frequency(sound[:quarter])
    high = dominant_frequency(sound[-quarter:])
    assert 500 <= low < 1500 < 3000 < high <= 6000
    assert -24 < rms_dbfs(sound) < -18


def test_locate_finds_a_quiet_inverted_chirp_in_noise() -> None:
    rng = np.random.default_rng(3)
    capture = rng.normal(0, 300, 30_000)
    sound = chirp()
    capture[12_345 : 12_345 + len(sound)] -= 0.2 * sound  # 14 dB lower, polarity flipped
    found = locate(sound, capture.astype(np.int16))
    assert found.offset == 12_345
    assert found.confidence > 0.5


def test_locate_reports_no_match_in_an_unrelated_capture() -> None:
    capture = np.concatenate(list(tone(650, frames=30)))
    found = locate(chirp(), capture)
    assert found.confidence < MIN_CONFIDENCE


def test_locate_refuses_a_capture_shorter_than_the_reference() -> None:
    with pytest.raises(ValueError, match="at least as long"):
        locate(chirp(), np.zeros(100, np.int16))


async def measure_in(
    model: RoomModel | None, audio: RoomAudio, route: Route = Route.SPEAKER
) -> None:
    """A call's first second and a half on ``route``: silence from the far end, the
    set-up chirp, and the room (no echo at all when ``model`` is None)."""
    stage = audio.start_call()
    total = round(SILENT_SECONDS * SAMPLE_RATE)
    response = model.impulse_response() if model is not None else np.zeros(1)
    noise = np.random.default_rng(5).normal(0, 10, total)
    try:
        await run_call(stage, np.zeros(total), noise, SimulatedRoom(response), route)
        if stage._measuring is not None:
            await stage._measuring
    finally:
        await audio.end_call(stage)


@pytest.mark.parametrize("delay", [0.012, 0.058, 0.25])
async def test_a_call_measures_its_route_s_delay_with_the_chirp(
    delay: float, tmp_path: Path
) -> None:
    audio = RoomAudio(RoomAudioConfig(), state_dir=tmp_path, libraries=Libraries.load())
    await measure_in(RoomModel(delay=delay, direct_db=-30, seed=int(delay * 1000)), audio)

    measured = audio.delays.get(Route.SPEAKER)
    assert measured is not None
    assert measured.delay_ms == pytest.approx(delay * 1000, abs=0.5)
    assert audio.echo_delays()["SPEAKER"]["delay_ms"] == measured.delay_ms
    # Kept in the state directory for the next start.
    assert EchoDelayStore(tmp_path / "echo_delays.json").get(Route.SPEAKER) == measured


async def test_no_echo_means_no_measurement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A route whose sound never reaches the microphone (or a fake microphone) keeps the
    delay it had, and says so."""
    store_path = tmp_path / "echo_delays.json"
    earlier = new_delay(Route.SPEAKER, 0.042, 0.8)
    await EchoDelayStore(store_path).put(earlier)
    audio = RoomAudio(
        RoomAudioConfig(measure_echo_delay="every-call"),
        state_dir=tmp_path,
        libraries=Libraries.load(),
    )
    with caplog.at_level(logging.INFO, logger="appliance.audio.stage"):
        await measure_in(None, audio)
    assert audio.delays.get(Route.SPEAKER) == earlier
    assert "no echo of the chirp came back" in caplog.text
    assert "keeping 42.0 ms" in caplog.text


async def test_no_chirp_when_measuring_is_off_or_the_route_is_not_processed() -> None:
    off = RoomAudio(RoomAudioConfig(measure_echo_delay="off"), libraries=Libraries.load())
    await measure_in(RoomModel(), off)
    headphones = RoomAudio(RoomAudioConfig(), libraries=Libraries.load())
    await measure_in(RoomModel(), headphones, Route.HEADPHONES)
    assert off.delays.all() == {} and headphones.delays.all() == {}


async def test_a_measured_route_is_not_chirped_again(tmp_path: Path) -> None:
    """The room hears the chirp once per route, not at every call."""
    await EchoDelayStore(tmp_path / "echo_delays.json").put(new_delay(Route.SPEAKER, 0.03, 0.9))
    audio = RoomAudio(RoomAudioConfig(), state_dir=tmp_path, libraries=Libraries.load())
    stage = audio.start_call()
    try:
        stage._route_changed(Route.SPEAKER)
        assert stage._measuring is None
        assert stage.injection(960) is None  # nothing is mixed into the speaker
        stage._route_changed(Route.EARPIECE)  # a route never measured is
        assert stage._measuring is not None
    finally:
        await audio.end_call(stage)


async def test_the_store_survives_a_restart_and_ignores_a_damaged_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "echo_delays.json"
    store = EchoDelayStore(path)
    await store.put(new_delay(Route.SPEAKER, 0.0371, 0.91))
    await store.put(new_delay(Route.EARPIECE, 0.0205, 0.5))
    again = EchoDelayStore(path)
    assert again.all() == store.all()
    assert json.loads(path.read_text())["SPEAKER"]["delay_ms"] == 37.1

    path.write_text('{"SPEAKER": {"route": "LOUDSPEAKER"}}')
    with caplog.at_level(logging.WARNING):
        damaged = EchoDelayStore(path)
    assert damaged.all() == {}
    assert "ignoring unreadable echo delays" in caplog.text
