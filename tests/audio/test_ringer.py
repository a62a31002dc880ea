"""Ringtones on the speaker: they start on a ringing event and stop on every event that
ends the ringing, as the fake speaker's recording shows (FFT of what was written)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from appliance.audio import ringer as ringer_module
from appliance.audio.ringer import Ringer, Tone
from appliance.audio.settings import RoomAudioConfig
from appliance.calls.events import EventHub
from appliance.events import (
    Call,
    CallBusy,
    CallEndedMessageReceived,
    CallUnanswered,
    CallUser,
    Event,
    IncomingCallCancelled,
    IncomingCallReceived,
    OutgoingCallAccepted,
    OutgoingCallInitiated,
    OutgoingCallRejected,
    SessionStateChanged,
)
from appliance.media.remote import AudioMixer
from appliance.media.routes import AudioRouter
from hal.audio.base import SAMPLE_RATE, Route
from hal.audio.fake import FakeAudioOutput
from hal.audio.pcm import dominant_frequency, rms_dbfs

RING_HZ = 880.0  # the chime's first note
RINGBACK_HZ = 425.0
CALL = Call("s1", CallUser("a", "A"), CallUser("b", "B"), "video", "initiated", 0.0)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def first_seconds(speaker: FakeAudioOutput, start: float, end: float) -> np.ndarray:
    everything = speaker.recent(speaker.total_samples / SAMPLE_RATE)
    return everything[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]


class Setup:
    def __init__(self, config: RoomAudioConfig | None = None, busy: bool = False) -> None:
        self.hub = EventHub()
        self.speaker = FakeAudioOutput(Route.SPEAKER)
        self.busy = busy
        self.ringer = Ringer(
            self.hub,
            {Route.SPEAKER: self.speaker},
            config or RoomAudioConfig(),
            output_busy=lambda: self.busy,
        )

    async def played(self, seconds: float) -> None:
        await until(lambda: self.speaker.total_samples >= seconds * SAMPLE_RATE)

    async def stopped(self) -> None:
        await until(lambda: not self.speaker.is_open and self.ringer.tone is None)
        written = self.speaker.total_samples
        await asyncio.sleep(0.1)
        assert self.speaker.total_samples == written


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    s = Setup()
    s.ringer.start()
    await asyncio.sleep(0)  # the ringer subscribes to the events
    try:
        yield s
    finally:
        await s.ringer.close()


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        (IncomingCallReceived(CALL), IncomingCallCancelled(CALL)),
        (IncomingCallReceived(CALL), SessionStateChanged(state="connecting", session_id="s1")),
        (IncomingCallReceived(CALL), SessionStateChanged(state="idle", session_id=None)),
        (IncomingCallReceived(CALL), CallUnanswered(CALL)),
        (OutgoingCallInitiated(CALL), OutgoingCallAccepted(CALL)),
        (OutgoingCallInitiated(CALL), OutgoingCallRejected(CALL)),
        (OutgoingCallInitiated(CALL), CallBusy(CALL)),
        (OutgoingCallInitiated(CALL), CallUnanswered(CALL)),
        (OutgoingCallInitiated(CALL), CallEndedMessageReceived(CALL)),
    ],
)
async def test_rings_until_the_ringing_ends(setup: Setup, start: Event, stop: Event) -> None:
    setup.hub.emit(start)
    await setup.played(0.3)
    heard = first_seconds(setup.speaker, 0.0, 0.2)
    expected = RING_HZ if isinstance(start, IncomingCallReceived) else RINGBACK_HZ
    assert dominant_frequency(heard) == pytest.approx(expected, abs=5)
    assert setup.ringer.tone is (Tone.RING if expected == RING_HZ else Tone.RINGBACK)

    setup.hub.emit(stop)
    await setup.stopped()
    assert setup.speaker.opens == setup.speaker.closes == 1


async def test_ringing_state_changes_do_not_stop_it(setup: Setup) -> None:
    setup.hub.emit(IncomingCallReceived(CALL))
    setup.hub.emit(SessionStateChanged(state="ringing", session_id="s1"))
    await setup.played(1.1)
    assert setup.speaker.is_open and setup.ringer.tone is Tone.RING
    # A whole chime: both notes, then the start of the pause.
    assert dominant_frequency(first_seconds(setup.speaker, 0.26, 0.45)) == pytest.approx(
        1108.7, abs=5
    )


async def test_ring_level_follows_the_config() -> None:
    setup = Setup(RoomAudioConfig(ring_level_db=-20))
    await setup.ringer.ring(Tone.RINGBACK)
    await setup.played(0.5)
    await setup.ringer.release()
    assert rms_dbfs(first_seconds(setup.speaker, 0.05, 0.45)) == pytest.approx(-30, abs=1)


async def test_no_ring_while_a_call_holds_the_speaker_or_when_turned_off() -> None:
    busy = Setup(busy=True)
    await busy.ringer.ring(Tone.RING)
    off = Setup(RoomAudioConfig(ringtones=False))
    off.ringer.start()
    off.hub.emit(IncomingCallReceived(CALL))
    await asyncio.sleep(0.2)
    assert busy.speaker.opens == 0 and off.speaker.opens == 0
    await off.ringer.close()


async def test_a_ring_nobody_ends_stops_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ringer_module, "MAX_RING_SECONDS", 0.3)
    setup = Setup()
    await setup.ringer.ring(Tone.RING)
    await setup.played(0.1)
    await setup.stopped()
    assert 0.25 * SAMPLE_RATE <= setup.speaker.total_samples <= 0.4 * SAMPLE_RATE


async def test_a_failing_speaker_stops_the_ring_and_is_closed() -> None:
    setup = Setup()
    await setup.ringer.ring(Tone.RING)
    await setup.played(0.1)
    setup.speaker.fail()
    await until(lambda: setup.ringer.tone is None)
    assert not setup.speaker.is_open


async def test_the_call_s_audio_takes_the_speaker_from_the_ringer() -> None:
    """The router lets the ringer go before it opens the speaker: never both at once."""
    setup = Setup()
    router = AudioRouter({Route.SPEAKER: setup.speaker}, lambda m: None, lambda r: None)
    router.add_releaser(setup.ringer.release)
    await setup.ringer.ring(Tone.RING)
    await setup.played(0.2)
    opened_while_ringing = setup.speaker.opens

    mixer = AudioMixer(on_output_failed=lambda output, err: None)
    await router.bind(mixer)
    assert setup.ringer.tone is None
    assert setup.speaker.closes == opened_while_ringing  # the ringer closed it...
    assert setup.speaker.opens == opened_while_ringing + 1  # ...then the call opened it
    assert mixer.output is setup.speaker and setup.speaker.is_open
    written = setup.speaker.total_samples
    await asyncio.sleep(0.1)
    assert setup.speaker.total_samples == written  # no ring after the hand-over
    await router.close()
