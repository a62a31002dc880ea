"""The microphone through ALSA: the capture PCM read 20 ms at a time on a thread of its
own, from the room's microphone or, while its route plays, a SCO headset's."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import numpy as np

from hal.audio.alsa_pcm import (
    JOIN_SECONDS,
    AudioDeviceGone,
    close_quietly,
    is_stall,
    is_xrun,
    open_pcm,
)
from hal.audio.base import FRAME_SAMPLES, AudioError, Pcm
from hal.handoff import Handoff

log = logging.getLogger(__name__)

CAPTURE_BUFFER = 10  # periods captured ahead of the reader; then the thread waits (overrun)
POLL_SECONDS = 0.2
MAX_STALLS = 3  # a capture that stalls this often in a row, each time after opening again, is gone


class AlsaMicrophone:
    """The capture PCM, read by a thread 20 ms at a time. Records ``xruns`` (recovered
    overruns: the reader fell more than ``CAPTURE_BUFFER`` periods behind)."""

    def __init__(self, alsa: Any, device: str) -> None:
        self._alsa = alsa
        self.device = device
        self._source: str | None = None  # a headset's capture PCM, while its route plays
        self.captured_from: list[str] = []  # each PCM opened, in order
        self._frames: Handoff[Pcm] | None = None
        self._slots: threading.Semaphore | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.xruns = 0
        self.frames_read = 0
        self.opens = 0

    @property
    def is_open(self) -> bool:
        return self._frames is not None

    @property
    def source(self) -> str | None:
        return self._source

    def capture_from(self, device: str | None) -> None:
        """Capture from ``device`` (a headset's SCO PCM) instead of the room's microphone,
        or (None) from the room's again; an open microphone switches between two reads."""
        self._source = device

    def _open_source(self) -> tuple[Any, str]:
        """The PCM to capture from: the headset's if set and it opens, else the room's."""
        source = self._source
        if source is not None:
            try:
                pcm = open_pcm(self._alsa, True, source, "microphone")
            except AudioError as err:
                log.warning("microphone: the headset's %s (back to the room's)", err.message)
                if self._source == source:
                    self._source = None
            else:
                self.captured_from.append(source)
                return pcm, source
        pcm = open_pcm(self._alsa, True, self.device, "microphone")
        self.captured_from.append(self.device)
        return pcm, self.device

    async def open(self) -> None:
        if self.is_open:
            raise AudioError("microphone", "already open")
        pcm, current = await asyncio.to_thread(self._open_source)
        frames: Handoff[Pcm] = Handoff(CAPTURE_BUFFER + 1)
        slots = threading.Semaphore(CAPTURE_BUFFER)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._capture,
            args=(pcm, current, frames, slots, stop),
            name="microphone",
            daemon=True,
        )
        self._frames, self._slots, self._stop, self._thread = frames, slots, stop, thread
        thread.start()
        self.opens += 1

    async def read(self) -> Pcm:
        frames, slots = self._frames, self._slots
        if frames is None or slots is None:
            raise AudioError("microphone", "not open")
        pcm = await frames.get()
        slots.release()
        self.frames_read += 1
        return pcm

    async def close(self) -> None:
        frames, slots, thread = self._frames, self._slots, self._thread
        self._frames = self._slots = self._thread = None
        if frames is None or slots is None or thread is None:
            return
        self._stop.set()
        slots.release()  # wake a thread waiting for room
        frames.fail(AudioError("microphone", "closed"))
        await asyncio.to_thread(thread.join, JOIN_SECONDS)

    # --- the capture thread ---

    def _capture(
        self,
        pcm: Any,
        current: str,
        frames: Handoff[Pcm],
        slots: threading.Semaphore,
        stop: threading.Event,
    ) -> None:
        alsa = self._alsa
        pending = np.empty(0, np.int16)
        stalls = 0  # stalls in a row, each followed by an open that worked
        try:
            while not stop.is_set():
                if not slots.acquire(timeout=POLL_SECONDS):
                    continue  # the reader is behind: ALSA keeps capturing until it overruns
                if stop.is_set():
                    return
                if len(pending) >= FRAME_SAMPLES:
                    # A card rounds the period asked for (1024 frames is common): a read can
                    # bring more than a block, and each block goes before the next read, or
                    # the surplus of every read would add to the delay for the whole call.
                    frames.put_threadsafe(pending[:FRAME_SAMPLES].copy())
                    pending = pending[FRAME_SAMPLES:]
                    continue
                if (self._source or self.device) != current:  # to or from a headset
                    close_quietly(pcm)
                    pcm = None
                    pcm, current = self._open_source()
                    pending = np.empty(0, np.int16)
                try:
                    length, data = pcm.read()
                except alsa.ALSAAudioError as exc:
                    if not is_xrun(alsa, pcm):
                        if current != self.device:  # the headset went: the room's again
                            log.warning("microphone: the headset's %s failed: %s", current, exc)
                            if self._source == current:
                                self._source = None
                            slots.release()
                            continue
                        if not is_stall(exc) or stalls >= MAX_STALLS:
                            raise AudioDeviceGone("microphone", f"{self.device}: {exc}") from exc
                        # alsa-lib's read gave up waiting (a card that stopped delivering for
                        # longer than its buffer): opened again, it captures; a card that is
                        # gone does not open, and that ends the microphone.
                        stalls += 1
                        self.xruns += 1
                        log.warning("microphone: %s stalled (%s); opening it again", current, exc)
                        close_quietly(pcm)
                        pcm = None
                        pcm, current = self._open_source()
                        pending = np.empty(0, np.int16)
                        slots.release()
                        continue
                    length, data = -1, b""
                else:
                    stalls = 0
                if length < 0:
                    self.xruns += 1  # overrun: pyalsaaudio re-prepares on the next read
                    slots.release()
                    continue
                pending = np.concatenate((pending, np.frombuffer(data, "<i2").astype(np.int16)))
                if len(pending) < FRAME_SAMPLES:
                    slots.release()
                    continue
                frames.put_threadsafe(pending[:FRAME_SAMPLES].copy())
                pending = pending[FRAME_SAMPLES:]
        except AudioError as err:
            log.warning("microphone: %s", err.message)
            frames.fail_threadsafe(err)
        finally:
            if pcm is not None:
                close_quietly(pcm)
