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

    Scripting: ``set_tone(hz)``; ``set_silent(True)`` captures digital silence (zeros, as a
    browser's muted track sends) until ``set_silent(False)``; ``fail()`` makes it vanish
    (reads and opens raise AudioError) until ``restore()``; ``hear(output, delay_s,
    gain_db)`` puts it in a room with a fake output: what that output plays comes back into
    the capture ``delay_s`` later at ``gain_db`` (the echo path of a speakerphone; by
    default there is none).
    Records: ``opens``, ``closes``, ``frames_read``, ``overruns`` (this open's) and ``xruns``
    (every open's)."""

    def __init__(self, tone_hz: float, *, level_dbfs: float = -10.0) -> None:
        self._generator = ToneGenerator(tone_hz, level_dbfs=level_dbfs)
        self.opens = 0
        self.closes = 0
        self.frames_read = 0
        self._earlier_overruns = 0  # those of the opens before this one
        self._failed = False
        self._silent = False
        self._pacer: Pacer | None = None
        self._echo: list[Pcm] = []  # what the room carries back, oldest first
        self._echo_samples = 0
        self._echo_gain = 0.0
        self._echo_delay = 0

    def hear(
        self, output: FakeAudioOutput, *, delay_s: float = 0.03, gain_db: float = -6.0
    ) -> None:
        """Capture what ``output`` plays, ``delay_s`` later and ``gain_db`` louder."""
        self._echo_gain = 10 ** (gain_db / 20)
        self._echo_delay = round(delay_s * SAMPLE_RATE)
        output.on_played(self._carry)

    @property
    def echo_path(self) -> bool:
        """Whether it hears any output (``hear``); a kit's self-test needs it to."""
        return self._echo_delay > 0 or self._echo_gain > 0

    def _carry(self, pcm: Pcm) -> None:
        if not self.is_open:
            return  # nobody listening: the room's sound is gone
        if not self._echo:  # the path was quiet: the sound takes delay_s to arrive
            self._echo.append(np.zeros(self._echo_delay, dtype=np.int16))
            self._echo_samples += self._echo_delay
        self._echo.append(pcm.copy())
        self._echo_samples += len(pcm)
        while self._echo_samples > SAMPLE_RATE and self._echo:  # at most a second in the air
            self._echo_samples -= len(self._echo.pop(0))

    def _heard(self, count: int) -> Pcm | None:
        if not self._echo:
            return None
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and self._echo:
            chunk = self._echo[0]
            used = min(len(chunk), count - filled)
            out[filled : filled + used] = chunk[:used]
            filled += used
            self._echo_samples -= used
            if used == len(chunk):
                self._echo.pop(0)
            else:
                self._echo[0] = chunk[used:]
        return out

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

    @property
    def xruns(self) -> int:
        return self._earlier_overruns + self.overruns

    def set_tone(self, hz: float) -> None:
        self._generator.set_frequency(hz)

    def set_silent(self, silent: bool) -> None:
        self._silent = silent

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
        pcm = self._generator.next(FRAME_SAMPLES)
        if self._silent:
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        echo = self._heard(FRAME_SAMPLES)
        if echo is None:
            return pcm
        mixed = pcm.astype(np.int32) + np.rint(echo * self._echo_gain).astype(np.int32)
        out: Pcm = np.clip(mixed, -32768, 32767).astype(np.int16)
        return out

    async def close(self) -> None:
        if self.is_open:
            self.closes += 1
        self._earlier_overruns += self.overruns
        self._pacer = None
        self._echo.clear()
        self._echo_samples = 0

    def fail(self) -> None:
        """The device vanishes (USB microphone pulled): released at once."""
        self._failed = True
        self._earlier_overruns += self.overruns
        self._pacer = None
        self._echo.clear()
        self._echo_samples = 0

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
    ``restore()``; ``underrun()`` counts one underrun, as a device that ran dry does. An
    output with ``needs_presence`` (the Bluetooth sink, which exists only while a headset is
    connected) also refuses writes while absent. Records: ``opens``, ``closes``, ``writes``,
    ``xruns``."""

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
        self._played_callbacks: CallbackList[Pcm] = CallbackList()
        self._open = False
        self._failed = False
        self.opens = 0
        self.closes = 0
        self.writes = 0
        self.xruns = 0

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

    def on_played(self, callback: Callable[[Pcm], None]) -> Callable[[], None]:
        """Call ``callback(pcm)`` with everything written from now on (a fake room)."""
        return self._played_callbacks.add(callback)

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
        if len(self._played_callbacks):
            self._played_callbacks.fire(pcm.copy())  # the caller may reuse its buffer

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

    def underrun(self) -> None:
        """The device ran dry once (and went on): what a real one counts in ``xruns``."""
        self.xruns += 1

    def restore(self) -> None:
        self._failed = False


def create(config: HalConfig, kit: KitIdentity) -> AudioDevices:
    """A microphone playing the kit's tone (or ``audio.fake_tone_hz``) and all four routes:
    speaker and earpiece present, headphones unplugged, Bluetooth absent until a headset
    connects (the registry ties it to the Bluetooth manager)."""
    tone_hz = config.audio.fake_tone_hz or kit_tone_hz(kit.uid)
    microphone = FakeMicrophone(tone_hz)
    outputs = {
        Route.SPEAKER: FakeAudioOutput(Route.SPEAKER, present=True),
        Route.EARPIECE: FakeAudioOutput(Route.EARPIECE, present=True),
        Route.HEADPHONES: FakeAudioOutput(Route.HEADPHONES, present=False),
        Route.BLUETOOTH: FakeAudioOutput(Route.BLUETOOTH, present=False),
    }
    if config.audio.fake_echo_db is not None:  # a speakerphone: the mic hears the speaker
        for route in (Route.SPEAKER, Route.EARPIECE):
            microphone.hear(
                outputs[route],
                delay_s=config.audio.fake_echo_ms / 1000,
                gain_db=config.audio.fake_echo_db,
            )
    return AudioDevices(microphone=microphone, outputs=dict(outputs))
