"""Consent checks between two real aiortc connections on loopback: answers that come late
(a busy far kit, a deep Wi-Fi queue) keep the connection, where aioice's own checks close
it; no answers at all close it once 30 s have passed without one. The interval between
checks runs on a hand-set clock; the answers' delays are real, and short."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aioice.ice
import pytest
from aioice import stun
from aioice.ice import Connection
from aiortc import RTCPeerConnection

from appliance.media.consent import CONSENT_LIFETIME, ice_connections, keep_consent_patiently
from tests.clock import ManualClock

LATE = 0.8  # seconds: past aioice's 0.5 s wait for a consent answer, well within ours


@dataclass
class Answers:
    """What one side does with the answers it sends to the other's checks."""

    delay: float | None = 0.0  # None: never sent
    sent_late: int = 0
    dropped: int = 0
    handles: list[asyncio.TimerHandle] = field(default_factory=list)


def hold_answers(connection: Connection, answers: Answers) -> None:
    """Every STUN answer ``connection`` sends goes out ``answers.delay`` late, or not."""
    loop = asyncio.get_running_loop()
    for protocol in connection._protocols:
        send: Callable[[stun.Message, tuple[str, int]], None] = protocol.send_stun

        def held(message: stun.Message, addr: tuple[str, int], send: object = send) -> None:
            assert callable(send)
            if message.message_class != stun.Class.RESPONSE:
                send(message, addr)
            elif answers.delay is None:
                answers.dropped += 1
            else:
                answers.sent_late += 1
                answers.handles.append(loop.call_later(answers.delay, send, message, addr))

        vars(protocol)["send_stun"] = held


@dataclass
class Pair:
    ours: RTCPeerConnection
    theirs: RTCPeerConnection
    answers: Answers

    @property
    def connection(self) -> Connection:
        (connection,) = ice_connections(self.ours)
        return connection


async def connected_pair(patient: bool, **options: object) -> Pair:
    ours, theirs = RTCPeerConnection(), RTCPeerConnection()
    ours.addTransceiver("audio", direction="sendrecv")
    await ours.setLocalDescription(await ours.createOffer())
    await theirs.setRemoteDescription(ours.localDescription)
    await theirs.setLocalDescription(await theirs.createAnswer())
    await ours.setRemoteDescription(theirs.localDescription)
    if patient:
        keep_consent_patiently(ours, **options)
    async with asyncio.timeout(30):
        while ours.connectionState != "connected" or theirs.connectionState != "connected":
            await asyncio.sleep(0.05)
    answers = Answers()
    (far,) = ice_connections(theirs)
    hold_answers(far, answers)
    return Pair(ours, theirs, answers)


@pytest.fixture
async def pairs() -> AsyncIterator[list[Pair]]:
    made: list[Pair] = []
    yield made
    for pair in made:
        for handle in pair.answers.handles:
            handle.cancel()
        await pair.ours.close()
        await pair.theirs.close()


class GatedSleep:
    """Sleeps of the hand-set clock: each moves it on and returns at once, but only once
    the test has opened the gate (the answers are held as it wants by then)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.gate = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        await self.gate.wait()
        self.clock.now += delay
        await asyncio.sleep(0)


async def test_late_answers_keep_the_connection(pairs: list[Pair]) -> None:
    clock = ManualClock()
    sleep = GatedSleep(clock)
    pair = await connected_pair(True, clock=clock, sleep=sleep)
    pairs.append(pair)
    pair.answers.delay = LATE
    sleep.gate.set()
    # A minute of checks, every one answered late.
    async with asyncio.timeout(60):
        while clock.now < 2 * CONSENT_LIFETIME and pair.ours.connectionState == "connected":
            await asyncio.sleep(0.05)
    assert pair.ours.connectionState == "connected"
    assert not pair.connection._closed
    assert pair.answers.sent_late >= 10  # the checks went on, and each was answered late


async def test_aioices_own_checks_close_on_late_answers(
    pairs: list[Pair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why we replace them: the same late answers close a connection aioice checks."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.01)
    pair = await connected_pair(False)
    pairs.append(pair)
    pair.answers.delay = LATE
    async with asyncio.timeout(30):
        while not pair.connection._closed:
            await asyncio.sleep(0.05)
    assert pair.answers.sent_late >= aioice.ice.CONSENT_FAILURES


async def test_consent_lapses_after_thirty_seconds_without_an_answer(pairs: list[Pair]) -> None:
    clock = ManualClock()
    sleep = GatedSleep(clock)
    # No retransmissions: each unanswered check gives up after 0.5 s, not 3.5.
    pair = await connected_pair(True, clock=clock, sleep=sleep, retransmissions=0)
    pairs.append(pair)
    pair.answers.delay = None
    closed_at: list[float] = []
    pair.ours.on("connectionstatechange", lambda: closed_at.append(clock.now))
    sleep.gate.set()
    async with asyncio.timeout(60):
        while not pair.connection._closed:
            await asyncio.sleep(0.05)
    assert pair.ours.connectionState in ("failed", "closed")
    # The checks began at 0 and none was answered: consent lapsed at the first check at or
    # past 30 s, and checks come 4 to 6 s apart.
    assert CONSENT_LIFETIME <= closed_at[0] < CONSENT_LIFETIME + 6.0
    assert pair.answers.dropped >= 6
