"""Fake audio: a microphone playing the kit's own tone, and outputs that record what they
are given, one per route."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioDevices, AudioError, Pcm, Route
from hal.audio.pcm import ToneGenerator
from hal.callbacks import CallbackList
from hal.config import HalConfig
from hal.kit import KitIdentity, uid_fraction
from hal.pacing import Pacer

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
TONE_STEPS_HZ = tuple(range(300, 1251, 50))  # 20 tones a kit's uid chooses from
CAPTURE_BUFFER_FRAMES = 10  # a reader 200 ms behind loses audio, as an ALSA overrun does


def kit_tone_hz(uid: str) -> float:
    """The fake microphone's frequency for a kit: 300-1250 Hz in 50 Hz steps, so two kits'
    tones are at least 50 Hz apart or the same."""
    step = int(uid_fraction(uid, "microphone-tone") * len(TONE_STEPS_HZ))
    return float(TONE_STEPS_HZ[step])


class FakeMicrophone:
    """Captures a continuous sine, 20 ms per ``read()``, paced in real time.

    Scripting: ``set_tone(hz)``; ``fail()`` makes it vanish (reads and opens raise AudioError)
    until ``restore()``. Records: ``opens``, ``closes``, ``frames_read``, ``overruns``."""

    def __init__(self, tone_hz: float, *, level_dbfs: float = -10.0) -> None:
        self._generator = ToneGenerator(tone_hz, level_dbfs=level_dbfs)
        self.opens = 0
        self.closes = 0
        self.frames_read = 0
        self._failed = False
        self._pacer: Pacer | None = None

    @property
    def tone_hz(self) -> float:
        return self._generator.frequency

    @property
    def is_open(self) -> bool:
        return self._pacer is not None

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def overruns(self) -> int:
        """Frames lost because the reader fell behind the capture buffer."""
        return self._pacer.skipped if self._pacer else 0

    def set_tone(self, hz: float) -> None:
        self._generator.set_frequency(hz)

    async def open(self) -> None:
        if self._failed:
            raise AudioError("microphone", "device is gone")
        if self.is_open:
            raise AudioError("microphone", "already open")
        self._pacer = Pacer(FRAME_SECONDS, max_lag=CAPTURE_BUFFER_FRAMES)
        self._pacer.start()
        self.opens += 1

    async def read(self) -> Pcm:
        if self._failed:
            raise AudioError("microphone", "device is gone")
        pacer = self._pacer
        if pacer is None:
            raise AudioError("microphone", "not open")
        await pacer.next_slot()
        if self._failed:
            raise AudioError("microphone", "device is gone")
        if pacer is not self._pacer:
            raise AudioError("microphone", "closed while reading")
        self.frames_read += 1
        return self._generator.next(FRAME_SAMPLES)

    async def close(self) -> None:
        if self.is_open:
            self.closes += 1
        self._pacer = None

    def fail(self) -> None:
        """The device vanishes (USB microphone pulled): released at once."""
        self._failed = True
        self._pacer = None

    def restore(self) -> None:
        """The device is back; it must be opened again."""
        self._failed = False


class PcmRecorder:
    """The last ``capacity`` samples written, in a fixed-size ring, plus a running total."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        # np.zeros maps untouched pages lazily, so an output nobody plays to costs nothing.
        self._ring = np.zeros(capacity, np.int16)
        self.total_samples = 0

    def append(self, pcm: Pcm) -> None:
        samples = pcm[-self.capacity :]
        start = (self.total_samples + len(pcm) - len(samples)) % self.capacity
        first = min(len(samples), self.capacity - start)
        self._ring[start : start + first] = samples[:first]
        self._ring[: len(samples) - first] = samples[first:]
        self.total_samples += len(pcm)

    def recent(self, samples: int) -> Pcm:
        count = max(0, min(samples, self.total_samples, self.capacity))
        end = self.total_samples % self.capacity
        if count <= end:
            return self._ring[end - count : end].copy()
        return np.concatenate((self._ring[self.capacity - (count - end) :], self._ring[:end]))


class FakeAudioOutput:
    """One audio route that keeps what it played: the last ``keep_seconds`` (``recent()``)
    and a total (``total_samples``).

    Scripting: ``set_present(bool)`` (headphones plugged, headset connected) fires the
    presence callbacks on the loop; ``fail()`` makes writes and opens raise AudioError until
    ``restore()``. An output with ``needs_presence`` (the Bluetooth sink, which exists only
    while a headset is connected) also refuses writes while absent. Records: ``opens``,
    ``closes``, ``writes``."""

    def __init__(
        self,
        route: Route,
        *,
        present: bool = True,
        needs_presence: bool | None = None,
        keep_seconds: float = 60.0,
    ) -> None:
        self._route = route
        self._present = present
        self.needs_presence = route is Route.BLUETOOTH if needs_presence is None else needs_presence
        self._recorder = PcmRecorder(round(keep_seconds * SAMPLE_RATE))
        self._presence_callbacks: CallbackList[bool] = CallbackList()
        self._open = False
        self._failed = False
        self.opens = 0
        self.closes = 0
        self.writes = 0

    @property
    def route(self) -> Route:
        return self._route

    @property
    def present(self) -> bool:
        return self._present

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def total_samples(self) -> int:
        return self._recorder.total_samples

    @property
    def capacity_samples(self) -> int:
        return self._recorder.capacity

    def on_presence_changed(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        return self._presence_callbacks.add(callback)

    def set_present(self, present: bool) -> None:
        if present != self._present:
            self._present = present
            self._presence_callbacks.fire(present)

    def _device(self) -> str:
        return f"audio {self._route.value.lower()}"

    def _check_usable(self) -> None:
        if self._failed:
            raise AudioError(self._device(), "device is gone")
        if self.needs_presence and not self._present:
            raise AudioError(self._device(), "no device connected")

    async def open(self) -> None:
        self._check_usable()
        if not self._open:
            self._open = True
            self.opens += 1

    async def write(self, pcm: Pcm) -> None:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected 1-D int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        self._check_usable()
        if not self._open:
            raise AudioError(self._device(), "not open")
        self._recorder.append(pcm)
        self.writes += 1

    def recent(self, seconds: float) -> Pcm:
        """A copy of the last ``seconds`` played (less if less was played)."""
        return self._recorder.recent(round(seconds * SAMPLE_RATE))

    async def close(self) -> None:
        if self._open:
            self.closes += 1
        self._open = False

    def fail(self) -> None:
        """The device vanishes: writes raise AudioError until ``restore()``."""
        self._failed = True

    def restore(self) -> None:
        self._failed = False


def create(config: HalConfig, kit: KitIdentity) -> AudioDevices:
    """A microphone playing the kit's tone (or ``audio.fake_tone_hz``) and all four routes:
    speaker and earpiece present, headphones unplugged, Bluetooth absent until a headset
    connects (the registry ties it to the Bluetooth manager)."""
    tone_hz = config.audio.fake_tone_hz or kit_tone_hz(kit.uid)
    return AudioDevices(
        microphone=FakeMicrophone(tone_hz),
        outputs={
            Route.SPEAKER: FakeAudioOutput(Route.SPEAKER, present=True),
            Route.EARPIECE: FakeAudioOutput(Route.EARPIECE, present=True),
            Route.HEADPHONES: FakeAudioOutput(Route.HEADPHONES, present=False),
            Route.BLUETOOTH: FakeAudioOutput(Route.BLUETOOTH, present=False),
        },
    )
