"""Ringtones: the speaker rings for an incoming call and plays the ring-back tone while an
outgoing call rings the other side, until it is answered, rejected, cancelled, busy or
unanswered (the session server's ring timeout), or ``MAX_RING_SECONDS`` have passed.

The ringer holds the speaker only while ringing and gives it up before a call's audio
takes it: the router awaits ``release`` before it opens an output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Protocol

import numpy as np

from appliance.audio import sounds
from appliance.audio.settings import RoomAudioConfig
from appliance.events import (
    CallBusy,
    CallEndedMessageReceived,
    CallEvent,
    CallUnanswered,
    IncomingCallCancelled,
    IncomingCallReceived,
    OutgoingCallAccepted,
    OutgoingCallInitiated,
    OutgoingCallRejected,
    SessionStateChanged,
)
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioError, AudioOutput, Pcm, Route
from hal.errors import HardwareError
from hal.pacing import Pacer

log = logging.getLogger(__name__)

PERIOD = FRAME_SAMPLES / SAMPLE_RATE
MAX_RING_SECONDS = 120.0  # a backstop: the session server ends an unanswered call first


class Events(Protocol):
    """Where the ringer hears call events from (``appliance.calls.events.EventHub``)."""

    def subscribe(self) -> AbstractContextManager[asyncio.Queue[CallEvent]]: ...


class Tone(StrEnum):
    RING = "ring"  # an incoming call
    RINGBACK = "ringback"  # our outgoing call rings the other side


class Ringer:
    def __init__(
        self,
        events: Events,
        outputs: dict[Route, AudioOutput],
        config: RoomAudioConfig,
        *,
        output_busy: Callable[[], bool] = lambda: False,
        tones: dict[Tone, Pcm] | None = None,
        before_ring: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``output_busy`` says whether a call's audio holds the outputs now (then nothing
        rings). ``tones`` replaces the shipped sound files."""
        self._events = events
        self._outputs = outputs
        self._config = config
        self._output_busy = output_busy
        self._tones = tones
        self._before_ring = before_ring  # frees the speaker first (a running self-test)
        self._follow: asyncio.Task[None] | None = None
        self._ringing: asyncio.Task[None] | None = None
        self.tone: Tone | None = None  # what is playing now
        self.rings = 0  # how many times it started ringing

    def start(self) -> None:
        if self._follow is None and self._config.ringtones:
            self._follow = asyncio.create_task(self._follow_events(), name="ringer")

    async def close(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        await self.release()

    async def release(self) -> None:
        """Stop ringing; returns once the speaker is closed again."""
        task, self._ringing = self._ringing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow_events(self) -> None:
        with self._events.subscribe() as queue:
            while True:
                await self._on_event(await queue.get())

    async def _on_event(self, record: CallEvent) -> None:
        match record.event:
            case IncomingCallReceived():
                await self.ring(Tone.RING)
            case OutgoingCallInitiated():
                await self.ring(Tone.RINGBACK)
            case (
                OutgoingCallAccepted()
                | OutgoingCallRejected()
                | IncomingCallCancelled()
                | CallUnanswered()
                | CallBusy()
                | CallEndedMessageReceived()
            ):
                await self.release()
            case SessionStateChanged(state=state) if state != "ringing":
                await self.release()

    async def ring(self, tone: Tone) -> None:
        await self.release()
        if self._before_ring is not None:
            await self._before_ring()
        if self._output_busy():
            log.info("not ringing (%s): a call's audio holds the speaker", tone.value)
            return
        output = self._outputs.get(Route.SPEAKER)
        if output is None or not output.present:
            log.warning("cannot ring (%s): this kit has no speaker", tone.value)
            return
        try:
            pcm = self._pcm(tone)
        except sounds.SoundError as err:
            log.error("cannot ring (%s): %s", tone.value, err)
            return
        self._ringing = asyncio.create_task(self._play(output, tone, pcm), name=f"ring {tone}")

    def _pcm(self, tone: Tone) -> Pcm:
        if self._tones is not None:
            pcm = self._tones[tone]
        else:
            pcm = sounds.load(sounds.RING if tone is Tone.RING else sounds.RINGBACK)
        gain = 10 ** (self._config.ring_level_db / 20)
        return pcm if gain == 1 else np.rint(pcm * gain).astype(np.int16)

    async def _play(self, output: AudioOutput, tone: Tone, pcm: Pcm) -> None:
        pacer = Pacer(PERIOD)
        loop = asyncio.get_running_loop()
        until = loop.time() + MAX_RING_SECONDS
        position = 0
        try:  # closed in every case, even when released while opening
            await output.open()
            self.tone = tone
            self.rings += 1
            log.info("ringing (%s) on the speaker", tone.value)
            while loop.time() < until:
                await pacer.next_slot()
                index = (position + np.arange(FRAME_SAMPLES)) % len(pcm)
                position = (position + FRAME_SAMPLES) % len(pcm)
                await output.write(pcm[index])
            log.info("stopped ringing (%s) after %.0f s", tone.value, MAX_RING_SECONDS)
        except AudioError as err:
            log.warning("ringing (%s) failed: %s", tone.value, err)
        finally:
            self.tone = None
            with contextlib.suppress(HardwareError):
                await output.close()
