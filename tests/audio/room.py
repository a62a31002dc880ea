"""A room in software, for the echo canceller: the kit's loudspeaker reaches its microphone
through an impulse response (a delay, an attenuation, an exponential reverb tail), and a
near-end talker and noise are added. A call is driven through the real processing stage
frame by frame, as the kit drives it: the mixer's limiter and the stage's playback hook on
the way out, the stage's capture processing on the way in."""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.audio.limiter import SoftLimiter
from appliance.audio.sounds import decode
from appliance.audio.stage import ProcessingStage
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm, Route
from hal.audio.pcm import FULL_SCALE

PERIOD = FRAME_SAMPLES / SAMPLE_RATE
Signal = npt.NDArray[np.float64]


def speak(text: str, voice: str, path: Path) -> Signal:
    """``text`` spoken by espeak-ng, as float samples at 48 kHz."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is missing: `make test` installs it (Debian espeak-ng)")
    subprocess.run([espeak, "-v", voice, "-w", str(path), text], check=True)
    return decode(path).astype(np.float64)


def at_level(signal: Signal, dbfs: float) -> Signal:
    """Scaled so its active part (above -50 dB of its peak) has this RMS level (AES17:
    a full-scale sine reads 0 dBFS)."""
    active = signal[np.abs(signal) > np.max(np.abs(signal)) * 10 ** (-50 / 20)]
    rms = math.sqrt(float(np.mean(active * active)))
    return signal * (FULL_SCALE * 10 ** (dbfs / 20) / math.sqrt(2) / rms)


def level_dbfs(signal: Signal) -> float:
    rms = math.sqrt(float(np.mean(signal * signal)))
    return 20 * math.log10(max(rms, 1e-9) * math.sqrt(2) / FULL_SCALE)


@dataclass(frozen=True)
class RoomModel:
    delay: float = 0.037  # loudspeaker to microphone, including the converters' buffers
    direct_db: float = -18.0  # the direct path's gain
    direct_to_reverb_db: float = 12.0  # energy of the direct path over the tail's
    rt60: float = 0.3  # seconds for the tail to fall 60 dB
    length: float = 0.4
    seed: int = 7

    def impulse_response(self) -> Signal:
        rng = np.random.default_rng(self.seed)
        n = round(self.length * SAMPLE_RATE)
        first = round(self.delay * SAMPLE_RATE)
        h = np.zeros(first + n)
        direct = 10 ** (self.direct_db / 20)
        h[first] = direct
        t = np.arange(n) / SAMPLE_RATE
        tail = rng.standard_normal(n) * np.exp(-t * 3 * math.log(10) / self.rt60)
        tail[: round(0.003 * SAMPLE_RATE)] = 0  # reflections arrive after the direct sound
        tail *= direct * math.sqrt(10 ** (-self.direct_to_reverb_db / 10) / np.sum(tail**2))
        h[first:] += tail
        return h


class SimulatedRoom:
    """Streams what the loudspeaker plays through the impulse response, block by block."""

    def __init__(self, impulse_response: Signal) -> None:
        self._ir = impulse_response
        self._size = 1 << (FRAME_SAMPLES + len(impulse_response) - 1).bit_length()
        self._spectrum = np.fft.rfft(impulse_response, self._size)
        self._pending = np.zeros(self._size)

    def play(self, pcm: Pcm) -> Signal:
        """The echo that reaches the microphone during this block."""
        convolved = np.fft.irfft(np.fft.rfft(pcm.astype(np.float64), self._size) * self._spectrum)
        self._pending += convolved[: self._size]
        echo = self._pending[: len(pcm)].copy()
        self._pending = np.concatenate((self._pending[len(pcm) :], np.zeros(len(pcm))))
        return echo


@dataclass
class CallRecording:
    """Everything that happened at the microphone, sample-aligned."""

    echo: Signal  # the loudspeaker's sound as it reached the microphone
    microphone: Signal  # echo + near-end + noise, as captured
    output: Signal  # what the stage sent to the far end
    voice: list[float | None] = field(default_factory=list)  # per frame
    gain_db: list[float | None] = field(default_factory=list)


async def run_call(
    stage: ProcessingStage,
    far: Signal,
    near: Signal,
    room: SimulatedRoom,
    route: Route = Route.SPEAKER,
) -> CallRecording:
    """Play ``far`` (the far end's mix) on ``route`` and capture the room with ``near``
    (near-end speech and noise) in it, through ``stage``, on a simulated clock."""
    frames = min(len(far), len(near)) // FRAME_SAMPLES
    limiter = SoftLimiter()
    record = CallRecording(*(np.zeros(frames * FRAME_SAMPLES) for _ in range(3)))
    for k in range(frames):
        block = slice(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        mix = np.rint(far[block]).astype(np.int32)
        injected = stage.injection(FRAME_SAMPLES)
        if injected is not None:
            mix += injected
        played = limiter.process(mix)
        stage.played(played, route, k * PERIOD)
        echo = room.play(played)
        captured = echo + near[block]
        microphone = np.clip(np.rint(captured), -FULL_SCALE - 1, FULL_SCALE).astype(np.int16)
        processed = await stage.process(microphone, (k + 1) * PERIOD)
        record.echo[block] = echo
        record.microphone[block] = microphone
        record.output[block] = processed.pcm
        record.voice.append(processed.voice)
        record.gain_db.append(processed.gain_db)
    return record


def seconds(start: float, end: float) -> slice:
    return slice(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE))


def erle_db(echo: Signal, output: Signal, span: slice) -> float:
    """Echo return loss enhancement: the echo's power at the microphone over the power of
    what was sent, where only the far end spoke."""
    e, o = echo[span], output[span]
    return 10 * math.log10(float(np.sum(e * e)) / max(float(np.sum(o * o)), 1e-9))


def correlation(output: Signal, clean: Signal, span: slice, max_lag: float = 0.04) -> float:
    """Correlation of the output with the clean near-end speech over ``span``, at the
    processing latency (the lag up to ``max_lag`` that fits best)."""
    reference = clean[span]
    longest = round(max_lag * SAMPLE_RATE)
    window = output[span.start : span.stop + longest]
    size = 1 << (len(window) + len(reference)).bit_length()
    spectrum = np.fft.rfft(window, size) * np.conj(np.fft.rfft(reference, size))
    lag = int(np.argmax(np.fft.irfft(spectrum, size)[: longest + 1]))
    x = output[span.start + lag : span.stop + lag]
    return float(
        np.dot(x, reference) / math.sqrt(float(np.dot(x, x) * np.dot(reference, reference)))
    )


def place(total: int, pieces: list[tuple[float, Signal]]) -> Signal:
    """A signal of ``total`` samples with each piece starting at its time (seconds)."""
    out = np.zeros(total)
    for start, piece in pieces:
        first = round(start * SAMPLE_RATE)
        n = min(len(piece), total - first)
        out[first : first + n] += piece[:n]
    return out


def describe(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


FAR_TEXTS = (
    "Good morning everyone, thank you for joining the weekly planning call from the office.",
    "The first item on the agenda is the release of the new firmware for the camera kits.",
    "We measured the battery life again and it improved by almost twenty percent this month.",
    "Please send your questions about the budget to the finance team before Friday.",
)
NEAR_TEXTS = (
    "Sorry to interrupt, can you repeat the last number please?",
    "We hear you well, the sound in this room is clear today.",
    "Thanks, that answers my question about the schedule.",
)
CALL_SECONDS = 32.0
FAR_FROM = 1.5  # after the set-up chirp, as a call's first words come
FAR_UNTIL = 24.0
NEAR_AT = (12.0, 20.0, 26.0)  # two double-talk stretches, then the near end alone


@dataclass
class Scenario:
    far: Signal  # the far end's voice, as the mixer receives it
    near: Signal  # the near-end talker at the microphone, clean
    noise: Signal  # the room's noise at the microphone
    far_only: tuple[slice, ...]  # after the canceller has converged
    double_talk: tuple[slice, ...]
    near_only: tuple[slice, ...]


def build_scenario(
    workdir: Path,
    *,
    far_dbfs: float = -20.0,
    near_dbfs: float = -22.0,
    noise_dbfs: float = -70.0,
    seed: int = 11,
) -> Scenario:
    """A call: the far end (espeak-ng's en-us voice) talks from 1.5 s to 24 s; the near end
    (a female variant, other words) talks over it at 12 s and 20 s, then alone at 26 s."""
    total = round(CALL_SECONDS * SAMPLE_RATE)
    far_parts: list[tuple[float, Signal]] = []
    start = FAR_FROM
    for i, text in enumerate(FAR_TEXTS * 3):
        if start >= FAR_UNTIL:
            break
        speech = speak(text, "en-us", workdir / f"far{i % len(FAR_TEXTS)}.wav")
        speech = speech[: round((FAR_UNTIL - start) * SAMPLE_RATE)]
        far_parts.append((start, speech))
        start += len(speech) / SAMPLE_RATE + 0.3
    far = place(total, [(t, at_level(s, far_dbfs)) for t, s in far_parts])
    near_parts = []
    for i, (at, text) in enumerate(zip(NEAR_AT, NEAR_TEXTS, strict=True)):
        speech = speak(text, "en+f3", workdir / f"near{i}.wav")
        near_parts.append((at, at_level(speech, near_dbfs)))
    near = place(total, near_parts)
    spans = [seconds(at, at + len(s) / SAMPLE_RATE) for at, s in near_parts]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(total) * FULL_SCALE * 10 ** (noise_dbfs / 20) / math.sqrt(2)
    return Scenario(
        far,
        near,
        noise,
        far_only=(seconds(6.0, 12.0), seconds(16.0, 20.0)),
        double_talk=tuple(spans[:2]),
        near_only=tuple(spans[2:]),
    )


def without_gain(record: CallRecording) -> Signal:
    """The output with the gain control's gain (as the stage reported it, frame by frame)
    divided out: the AGC raises the near-end talker and any echo left alike, so this is
    what the canceller and the noise suppressor did."""
    gains = np.array([g or 0.0 for g in record.gain_db])
    return record.output / np.repeat(10 ** (gains / 20), FRAME_SAMPLES)[: len(record.output)]
