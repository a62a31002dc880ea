"""Real audio through ALSA (pyalsaaudio): the microphone (``hal.audio.capture``) and one
playback PCM per route.

Every PCM runs at 48 kHz, S16_LE, mono, in 20 ms periods (960 frames), on its own thread:
ALSA reads and writes block. Routes map to PCM names from config (``[hal.audio]``):
``speaker``, ``earpiece``, ``headphones`` and ``bluetooth`` (bluez-alsa's ``bluealsa`` PCM).
Use ``plughw:``/``dmix``-style names or ``default`` so ALSA converts for cards that cannot
do mono 48 kHz themselves.

An xrun (over- or underrun, ``-EPIPE``) is recovered by re-preparing the PCM and counted;
an underrun's period is written again. pyalsaaudio 0.10 raises on an underrun, 0.11 (what
pip installs) re-prepares the PCM and returns ``-EPIPE`` from ``write``: both count. A
PCM that fails otherwise (unplugged USB card, a Bluetooth headset gone) is reported as
``AudioDeviceGone`` from the next read or write, so the router falls back to another route.
Where the card reports its headphone jack, the headphone route is present only while
something is plugged in (``jack.HeadphoneJack``).

The Bluetooth route plays on bluez-alsa's PCM for the headset that connected last:
``bluealsa:DEV=<address>,PROFILE=a2dp`` where it has A2DP, else ``PROFILE=sco`` (HFP/HSP
only); bluez-alsa's own ``bluealsa`` defaults to A2DP, which such a headset lacks. While a
SCO headset's route is open the microphone captures from the headset too, and from the
room's microphone again once it closes (or if the headset's capture fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hal.audio.alsa_pcm import (
    JOIN_SECONDS,
    AudioDeviceGone,
    bluealsa_pcm,
    close_quietly,
    is_xrun,
    open_pcm,
)
from hal.audio.base import FRAME_SAMPLES, AudioDevices, AudioError, Pcm, Route
from hal.audio.capture import AlsaMicrophone
from hal.audio.cards import PROC_ASOUND, capture_candidates, list_cards
from hal.audio.jack import DEV, SYSFS, HeadphoneJack, find_headphone_jack
from hal.bluetooth.base import BluetoothDevice
from hal.callbacks import CallbackList
from hal.config import AudioConfig, HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity

log = logging.getLogger(__name__)
PLAYBACK_QUEUE = 10  # periods waiting for the device (200 ms); beyond that the oldest go
PREFILL = 2  # periods of silence first: the mixer's 20 ms ticks jitter on a busy loop


def import_alsaaudio() -> Any:
    try:
        import alsaaudio
    except ImportError as exc:
        raise HardwareError(
            "audio", f"pyalsaaudio cannot be imported ({exc}): install the hardware extra"
        ) from exc
    return alsaaudio


class AlsaOutput:
    """One route's playback PCM. ``write`` queues (never blocks the loop); a thread plays.
    Records ``xruns`` (recovered underruns), ``dropped`` (periods the device fell behind
    on) and ``periods_played``."""

    def __init__(
        self,
        alsa: Any,
        route: Route,
        device: str,
        *,
        present: bool = True,
        needs_presence: bool = False,
        capture: AlsaMicrophone | None = None,
    ) -> None:
        self._alsa = alsa
        self._route = route
        self.device = device
        self._base_device = device
        self._capture = capture  # captures from a SCO headset while this plays on it
        self.sco = False
        self._present = present
        self.needs_presence = needs_presence
        self._presence_callbacks: CallbackList[bool] = CallbackList()
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._failure: AudioError | None = None
        self.jack: HeadphoneJack | None = None  # what tells this route's presence, if any
        self.xruns = 0
        self.dropped = 0
        self.periods_played = 0
        self.opens = 0

    @property
    def route(self) -> Route:
        return self._route

    @property
    def name(self) -> str:
        return f"audio {self._route.value.lower()}"

    @property
    def present(self) -> bool:
        return self._present

    @property
    def is_open(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_presence_changed(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        return self._presence_callbacks.add(callback)

    def set_present(self, present: bool) -> None:
        if present != self._present:
            self._present = present
            if present:
                self._failure = None  # a device that comes back gets another chance
            self._presence_callbacks.fire(present)

    def use_headset(self, device: BluetoothDevice | None) -> None:
        """Play on this headset's PCM from the next open (None: the configured PCM)."""
        if device is None:
            self.device, self.sco = self._base_device, False
            return
        self.sco = device.sco_only
        self.device = bluealsa_pcm(self._base_device, device.address, sco=device.sco_only)

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self.needs_presence and not self._present:
            raise AudioError(self.name, "no device connected")

    async def open(self) -> None:
        """Opens the PCM; a route whose device failed is tried afresh (the router does so
        until the device is back), and a failure is forgotten once it opens."""
        if self.needs_presence and not self._present:
            raise AudioError(self.name, "no device connected")
        if self.is_open:
            return
        pcm = await asyncio.to_thread(open_pcm, self._alsa, False, self.device, self.name)
        self._failure = None
        pending: queue.Queue[bytes | None] = queue.Queue(PLAYBACK_QUEUE)
        thread = threading.Thread(
            target=self._play, args=(pcm, pending), name=self.name, daemon=True
        )
        self._queue, self._thread = pending, thread
        thread.start()
        self.opens += 1
        if self.sco and self._capture is not None:
            self._capture.capture_from(self.device)

    async def write(self, pcm: Pcm) -> None:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected 1-D int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        self._check_usable()
        pending = self._queue
        if pending is None:
            raise AudioError(self.name, "not open")
        data = pcm.astype("<i2", copy=False).tobytes()
        while True:
            try:
                pending.put_nowait(data)
                return
            except queue.Full:  # the device is slower than the mixer: drop the oldest
                with contextlib.suppress(queue.Empty):
                    pending.get_nowait()
                    self.dropped += 1

    async def close(self) -> None:
        pending, thread = self._queue, self._thread
        self._queue = self._thread = None
        if pending is None or thread is None:
            return
        if self._capture is not None and self._capture.source == self.device:
            self._capture.capture_from(None)
        while True:
            try:
                pending.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    pending.get_nowait()
        await asyncio.to_thread(thread.join, JOIN_SECONDS)

    # --- the playback thread ---

    def _play(self, pcm: Any, pending: queue.Queue[bytes | None]) -> None:
        try:
            silence = bytes(2 * FRAME_SAMPLES)
            for _ in range(PREFILL):
                self._write(pcm, silence)
            while (data := pending.get()) is not None:
                self._write(pcm, data)
                self.periods_played += 1
            with contextlib.suppress(self._alsa.ALSAAudioError):
                pcm.drain()  # play out the last 80 ms rather than cut them off
        except AudioError as err:
            log.warning("%s: %s", self.name, err.message)
            self._failure = err
        finally:
            close_quietly(pcm)

    def _write(self, pcm: Any, data: bytes) -> None:
        """Play one period; after an underrun, count it and write the period again."""
        for _attempt in range(2):
            try:
                result = pcm.write(data)
            except self._alsa.ALSAAudioError as exc:
                if not is_xrun(self._alsa, pcm):
                    raise AudioDeviceGone(self.name, f"{self.device}: {exc}") from exc
                # pyalsaaudio 0.10: an underrun raises; the next write re-prepares
                result = -errno.EPIPE
            if not isinstance(result, int) or result >= 0:
                return
            if result != -errno.EPIPE:
                raise AudioDeviceGone(self.name, f"{self.device}: {os.strerror(-result)}")
            # pyalsaaudio 0.11 re-prepared the PCM and wrote nothing of this period
            self.xruns += 1
        raise AudioDeviceGone(self.name, f"{self.device}: underruns on every write")


def create(
    config: HalConfig,
    kit: KitIdentity,
    *,
    alsa: Any = None,
    sysfs: Path = SYSFS,
    dev: Path = DEV,
    proc: Path = PROC_ASOUND,
) -> AudioDevices:
    """The configured PCMs, each checked by opening it once, so a missing card is a
    start-up error naming it. The Bluetooth PCM is opened only once a headset connects.
    A ``default`` microphone that cannot capture is looked for among the cards."""
    alsa = alsa if alsa is not None else import_alsaaudio()
    settings = config.audio
    wired = _wired_routes(settings)
    capture = find_microphone(alsa, settings.capture, proc)
    for what, device, is_capture in (
        ("microphone", capture, True),
        *((f"{route.value.lower()} route", device, False) for route, device in wired.items()),
    ):
        try:
            open_pcm(alsa, is_capture, device, "audio").close()
        except AudioError as err:
            raise HardwareError("audio", f"{what}: {err.message}") from err
    outputs: dict[Route, Any] = {
        route: AlsaOutput(alsa, route, device) for route, device in wired.items()
    }
    headphones = outputs.get(Route.HEADPHONES)
    if headphones is not None:
        _follow_jack(headphones, find_headphone_jack(sysfs, dev))
    jack = headphones.jack if headphones is not None else None
    microphone = AlsaMicrophone(alsa, capture)
    outputs[Route.BLUETOOTH] = AlsaOutput(
        alsa,
        Route.BLUETOOTH,
        settings.bluetooth,
        present=False,
        needs_presence=True,
        capture=microphone,
    )
    return AudioDevices(
        microphone=microphone,
        outputs=outputs,
        watchers=[jack.stop] if jack is not None else [],
    )


def find_microphone(alsa: Any, configured: str, proc: Path = PROC_ASOUND) -> str:
    """The capture PCM: the configured one; for ``default`` when it cannot capture (Pi OS
    Lite's card 0, the headphone jack, has no microphone), the first card that can, USB
    first. Logs which; raises HardwareError naming what to set when none can."""
    if configured != "default":
        return configured
    try:
        open_pcm(alsa, True, configured, "microphone").close()
        return configured
    except AudioError as err:
        default_problem = err.message
    tried = []
    for card in capture_candidates(list_cards(proc)):
        device = card.capture_pcm()
        try:
            open_pcm(alsa, True, device, "microphone").close()
        except AudioError as err:
            tried.append(f"{device}: {err.message}")
            continue
        log.warning(
            "microphone: the ALSA default PCM cannot capture (%s); using card %d, %s (%s), "
            "as %s. Set [hal.audio] capture to choose another",
            default_problem,
            card.index,
            card.id,
            card.name,
            device,
        )
        return device
    cards = ", ".join(f"{c.index} {c.id} ({c.name})" for c in list_cards(proc)) or "none"
    raise HardwareError(
        "audio",
        f"microphone: the ALSA default PCM cannot capture ({default_problem}) and no sound "
        f"card can{': ' + '; '.join(tried) if tried else ''} (cards: {cards}). Connect a USB "
        'speakerphone, or set [hal.audio] capture = "plughw:CARD=<card>,DEV=0" in the config',
    )


def _wired_routes(settings: AudioConfig) -> dict[Route, str]:
    routes = {Route.SPEAKER: settings.speaker}
    if settings.earpiece:
        routes[Route.EARPIECE] = settings.earpiece
    if settings.headphones:
        routes[Route.HEADPHONES] = settings.headphones
    return routes


def _follow_jack(output: AlsaOutput, device: Path | None) -> None:
    """Headphones are present while plugged in, if the card reports its jack; otherwise
    always (the route is offered and chosen by hand)."""
    if device is None:
        log.info("no headphone jack detection: the headphone route is always offered")
        return
    jack = HeadphoneJack(device, output.set_present)
    try:
        jack.start()
    except (OSError, RuntimeError) as exc:  # no permission, or no running loop
        log.warning("headphone jack %s cannot be followed: %s", device, exc)
        return
    output.jack = jack
    output.set_present(jack.plugged)
    log.info("headphone jack %s: %s", device, "plugged" if jack.plugged else "unplugged")
