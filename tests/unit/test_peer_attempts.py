"""How long a new connection has to carry media: a CPU that needs more than the first
attempt's time to connect gets longer ones, instead of restarting every attempt for good;
an offer waits for its answer longer than that, and an attempt's time starts once the
connection is negotiated. Checks are given the time (``check(now)``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

import appliance.media.peer as peer_module
from appliance.media.local import LocalMedia
from appliance.media.peer import (
    ANSWER_TIMEOUT,
    ATTEMPT_JITTER,
    ATTEMPT_TIMEOUT,
    Peer,
    SendSignal,
    attempt_timeout,
)
from appliance.signaling.messages import Candidate, Description
from hal.audio.fake import FakeMicrophone
from hal.camera.base import VideoFormat


def test_each_connection_that_never_carried_media_doubles_the_next_ones_time_up_to_4x() -> None:
    for unanswered, factor in [(0, 1), (1, 2), (2, 4), (3, 4), (10, 4)]:
        for _ in range(50):
            seconds = attempt_timeout(unanswered)
            low = ATTEMPT_TIMEOUT * factor * (1 - ATTEMPT_JITTER)
            high = ATTEMPT_TIMEOUT * factor * (1 + ATTEMPT_JITTER)
            assert low <= seconds <= high, (unanswered, seconds)


@pytest.fixture
async def local() -> AsyncIterator[LocalMedia]:
    media = LocalMedia([], FakeMicrophone(440.0), VideoFormat(), None, lambda *w: None)
    yield media
    await media.stop()


def make_peer(local: LocalMedia, offerer: bool, send: SendSignal) -> Peer:
    return Peer(
        "far",
        me="kit",
        offerer=offerer,
        local=local,
        send=send,
        on_track=lambda uid, track: None,
        on_health=lambda uid, health: None,
    )


async def test_an_offer_waits_for_its_answer_longer_than_an_attempt(local: LocalMedia) -> None:
    """A busy far kit took 17 s to answer: an offer is not given up after an attempt's 6 s."""
    offers: list[Description] = []

    async def send(description: Description | None, candidate: Candidate | None) -> None:
        if description is not None:
            offers.append(description)

    peer = make_peer(local, True, send)
    try:
        await peer.start(video=False)
        sent = asyncio.get_running_loop().time()
        assert [o.generation for o in offers] == [0]
        late = ATTEMPT_TIMEOUT * (1 + ATTEMPT_JITTER) + 1  # past the first attempt's time
        assert late < ANSWER_TIMEOUT
        await peer.check(sent + late, can_signal=True)
        assert [o.generation for o in offers] == [0]  # still waiting for its answer
        await peer.check(sent + ANSWER_TIMEOUT + 0.1, can_signal=True)
        assert [o.generation for o in offers] == [0, 1]  # unanswered: a new connection
    finally:
        await peer.close()


async def test_an_answers_attempt_starts_once_it_is_sent(
    local: LocalMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answering took long (a busy CPU): the connection gets its whole attempt after."""
    monkeypatch.setattr(peer_module, "ATTEMPT_TIMEOUT", 1.0)
    monkeypatch.setattr(peer_module, "ATTEMPT_JITTER", 0.0)
    answers: list[Description] = []

    async def slow_send(description: Description | None, candidate: Candidate | None) -> None:
        await asyncio.sleep(0.3)  # the answer's way out, slow
        if description is not None:
            answers.append(description)

    far = RTCPeerConnection()
    peer = make_peer(local, False, slow_send)
    try:
        far.addTransceiver("audio", direction="sendrecv")
        await far.setLocalDescription(await far.createOffer())
        offer = Description(type="offer", sdp=far.localDescription.sdp, generation=0)
        await peer.handle(offer, None)
        answered = asyncio.get_running_loop().time()
        assert [a.type for a in answers] == ["answer"]
        await peer.check(answered + 0.9, can_signal=True)
        assert peer.generation == 0 and len(answers) == 1  # not restarted within its second
    finally:
        await peer.close()
        await far.close()
