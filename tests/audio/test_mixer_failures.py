"""The mixer reports a failing output to the router (which falls back and retries it); an
output that came back and fails again is reported again, or the call would stay silent on
a route the router believes works."""

from __future__ import annotations

from appliance.media.remote import AudioMixer
from hal.audio.base import AudioOutput, Route
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
