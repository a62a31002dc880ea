"""Real audio through ALSA (pyalsaaudio): the microphone and one playback PCM per route.

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

from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioDevices, AudioError, Pcm, Route
from hal.audio.cards import PROC_ASOUND, capture_candidates, list_cards
from hal.audio.jack import DEV, SYSFS, HeadphoneJack, find_headphone_jack
from hal.bluetooth.base import BluetoothDevice
from hal.callbacks import CallbackList
from hal.config import AudioConfig, HalConfig
from hal.errors import DeviceGone, HardwareError
from hal.handoff import Handoff
from hal.kit import KitIdentity

log = logging.getLogger(__name__)

PERIODS = 4  # ALSA buffer: 80 ms
PLAYBACK_QUEUE = 10  # periods waiting for the device (200 ms); beyond that the oldest go
PREFILL = 2  # periods of silence first: the mixer's 20 ms ticks jitter on a busy loop
CAPTURE_BUFFER = 10  # periods captured ahead of the reader; then the thread waits (overrun)
JOIN_SECONDS = 2.0
POLL_SECONDS = 0.2
MAX_STALLS = 3  # a capture that stalls this often in a row, each time after opening again, is gone


class AudioDeviceGone(AudioError, DeviceGone):
    """The PCM failed for good: the route (or the microphone) is gone."""


def import_alsaaudio() -> Any:
    try:
        import alsaaudio
    except ImportError as exc:
        raise HardwareError(
            "audio", f"pyalsaaudio cannot be imported ({exc}): install the hardware extra"
        ) from exc
    return alsaaudio


def open_pcm(alsa: Any, capture: bool, device: str, name: str) -> Any:
    """Open ``device`` for 48 kHz mono S16_LE in 960-frame periods, or raise AudioError."""
    try:
        pcm = alsa.PCM(
            type=alsa.PCM_CAPTURE if capture else alsa.PCM_PLAYBACK,
            mode=alsa.PCM_NORMAL,
            rate=SAMPLE_RATE,
            channels=1,
            format=alsa.PCM_FORMAT_S16_LE,
            periodsize=FRAME_SAMPLES,
            periods=PERIODS,
            device=device,
        )
    except alsa.ALSAAudioError as exc:
        raise AudioDeviceGone(name, f"cannot open ALSA PCM {device!r}: {exc}") from exc
    info = pcm.info()
    if info.get("period_size", FRAME_SAMPLES) != FRAME_SAMPLES:
        log.info("%s: %s runs in %s-frame periods", name, device, info.get("period_size"))
    got = (info.get("rate"), info.get("channels"), info.get("format_name"))
    if got != (SAMPLE_RATE, 1, "S16_LE"):
        pcm.close()
        raise AudioError(
            name,
            f"ALSA PCM {device!r} runs at {got[0]} Hz, {got[1]} channels, {got[2]}; "
            "use a plug device (plughw:...) so ALSA converts to 48 kHz mono S16_LE",
        )
    return pcm


def bluealsa_pcm(base: str, address: str, *, sco: bool) -> str:
    """bluez-alsa's PCM for one headset and profile (its 20-bluealsa.conf takes DEV and
    PROFILE, "a2dp" or "sco"). A ``base`` that names its own arguments is kept as it is."""
    if ":" in base:
        return base
    return f"{base}:DEV={address},PROFILE={'sco' if sco else 'a2dp'}"


def is_stall(error: Exception) -> bool:
    """alsa-lib's blocking read or write returns -EIO when the card delivered nothing for
    longer than its buffer (pyalsaaudio gives only the message, with the device after it)."""
    return str(error).startswith(os.strerror(errno.EIO))


def close_quietly(pcm: Any) -> None:
    """Close ``pcm`` whatever state it is in: it is being given up."""
    with contextlib.suppress(Exception):
        pcm.close()


def is_xrun(alsa: Any, pcm: Any) -> bool:
    try:
        return bool(pcm.state() == alsa.PCM_STATE_XRUN)
    except alsa.ALSAAudioError:
        return False


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
