"""The mixer reports a failing output to the router (which falls back and retries it); an
output that came back and fails again is reported again, or the call would stay silent on
a route the router believes works. A block that raises (a tap's bug) is logged and the mix
plays on."""

from __future__ import annotations

import pytest

from appliance.media.remote import AudioMixer
from hal.audio.base import AudioOutput, Pcm, Route
from hal.audio.fake import FakeAudioOutput
from tests.audio.test_ringing_calls import until


async def test_an_output_that_fails_again_after_it_came_back_is_reported_again() -> None:
    reported: list[AudioOutput] = []
    mixer = AudioMixer(on_output_failed=lambda output, err: reported.append(output))
    speaker = FakeAudioOutput(Route.SPEAKER)
    await speaker.open()
    mixer.set_output(speaker)
    mixer.start()
    try:
        speaker.fail()
        await until(lambda: len(reported) == 1)
        speaker.restore()  # the router's retry opened it again: the mix plays on it
        played = speaker.writes
        await until(lambda: speaker.writes >= played + 3)
        assert len(reported) == 1  # a failure is reported once, not on every tick
        speaker.fail()
        await until(lambda: len(reported) == 2)
        assert reported == [speaker, speaker]
    finally:
        await mixer.stop()


async def test_a_block_that_raises_is_logged_and_the_mix_plays_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mixer = AudioMixer(on_output_failed=lambda output, err: None)
    speaker = FakeAudioOutput(Route.SPEAKER)
    await speaker.open()
    mixer.set_output(speaker)
    faults = 0

    def faulty_tap(pcm: Pcm) -> None:
        nonlocal faults
        if faults < 3:
            faults += 1
            raise ValueError("a tap's bug")

    mixer.taps.append(faulty_tap)
    mixer.start()
    try:
        await until(lambda: faults == 3)
        played = speaker.writes
        await until(lambda: speaker.writes >= played + 3)  # the mixer lives on
        assert mixer.block_failures == 3
        logged = [r for r in caplog.records if "audio mixer" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None  # once, with its traceback
    finally:
        await mixer.stop()
