"""The playback-to-capture delay of a route: a short chirp is played, found again in the
capture by cross-correlation, and the delay kept per route (in the state directory, so the
next call starts from it)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.storage import atomic_write_text
from hal.audio.base import SAMPLE_RATE, Pcm, Route
from hal.audio.pcm import dbfs_to_amplitude

log = logging.getLogger(__name__)

CHIRP_SECONDS = 0.2
CHIRP_LOW_HZ = 500.0
CHIRP_HIGH_HZ = 6000.0  # wide enough for a sharp correlation peak, inside AEC3's band
CHIRP_DBFS = -18.0
FADE_SECONDS = 0.01
MAX_DELAY_SECONDS = 0.5  # ALSA buffers, USB and Bluetooth stay below this
MIN_CONFIDENCE = 0.15  # normalised correlation; an unrelated capture stays near 0.02


def chirp(rate: int = SAMPLE_RATE) -> Pcm:
    """An exponential sweep, faded in and out so it starts and stops without a click."""
    n = round(CHIRP_SECONDS * rate)
    t = np.arange(n) / rate
    ratio = CHIRP_HIGH_HZ / CHIRP_LOW_HZ
    # Instantaneous frequency low * ratio**(t / T): its phase integral in closed form.
    phase = 2 * math.pi * CHIRP_LOW_HZ * CHIRP_SECONDS / math.log(ratio)
    signal = np.sin(phase * (ratio ** (t / CHIRP_SECONDS) - 1))
    fade = round(FADE_SECONDS * rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    signal[:fade] *= ramp
    signal[-fade:] *= ramp[::-1]
    return np.rint(signal * dbfs_to_amplitude(CHIRP_DBFS)).astype(np.int16)


@dataclass(frozen=True)
class Located:
    offset: int  # samples into the capture where the reference begins
    confidence: float  # normalised correlation there, 0..1


def locate(reference: Pcm, capture: Pcm) -> Located:
    """Where ``reference`` best matches inside ``capture`` (which must be longer), by
    FFT cross-correlation normalised by the energy of each capture window. The polarity is
    ignored: a speaker wired the other way round still echoes."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(capture, dtype=np.float64)
    if len(x) == 0 or len(y) < len(x):
        raise ValueError("the capture must be at least as long as the reference")
    size = 1 << (len(x) + len(y) - 1).bit_length()
    spectrum = np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size))
    correlation = np.fft.irfft(spectrum, size)[: len(y) - len(x) + 1]
    energy = np.concatenate(([0.0], np.cumsum(y * y)))
    window = energy[len(x) :] - energy[: len(y) - len(x) + 1]
    norm = np.sqrt(np.maximum(window, 1e-9) * max(float(np.dot(x, x)), 1e-9))
    score = np.abs(correlation) / norm
    offset = int(np.argmax(score))
    return Located(offset, float(min(1.0, score[offset])))


@dataclass(frozen=True)
class EchoDelay:
    route: Route
    delay_ms: float  # from a sample's hand-over to the output to its echo's capture
    confidence: float
    measured_at: float  # unix time

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "route": self.route.value}


class EchoDelayStore:
    """The measured delay of each route, persisted as JSON (``path`` None: memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._delays: dict[Route, EchoDelay] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            for entry in data.values():
                route = Route(entry["route"])
                self._delays[route] = EchoDelay(
                    route,
                    float(entry["delay_ms"]),
                    float(entry["confidence"]),
                    float(entry["measured_at"]),
                )
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            # Only a cache of measurements: the next call measures again.
            log.warning("ignoring unreadable echo delays in %s: %s", path, err)
            self._delays.clear()

    def get(self, route: Route) -> EchoDelay | None:
        return self._delays.get(route)

    def all(self) -> dict[Route, EchoDelay]:
        return dict(self._delays)

    async def put(self, delay: EchoDelay) -> None:
        self._delays[delay.route] = delay
        if self.path is not None:
            text = json.dumps({r.value: d.to_json() for r, d in self._delays.items()}, indent=2)
            try:
                await asyncio.to_thread(atomic_write_text, self.path, text + "\n", 0o644)
            except OSError as err:
                log.warning("cannot save echo delays to %s: %s", self.path, err)


def new_delay(route: Route, delay_seconds: float, confidence: float) -> EchoDelay:
    return EchoDelay(route, round(delay_seconds * 1000, 2), round(confidence, 3), time.time())
