"""The libraries that process the microphone: WebRTC's audio processing module (AEC3 echo
canceller, noise suppressor, AGC2 gain control, voice probability) through
``pywebrtc_audio``, and speexdsp's echo canceller when that module cannot be loaded.

An engine serves one route of one call (its echo canceller has learnt that route's echo
path) and is only ever used from one thread at a time: the stage's worker thread.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import Protocol

import numpy as np

from appliance.audio.settings import RoomAudioConfig
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm

log = logging.getLogger(__name__)

SPEEX_TAIL_SECONDS = 0.2  # the echo tail speex's linear filter models past the alignment


class Backend(StrEnum):
    WEBRTC = "webrtc"  # pywebrtc_audio: AEC3, NS, AGC2, voice probability
    SPEEX = "speexdsp"  # echo cancellation only
    NONE = "none"


@dataclass(frozen=True)
class Processed:
    pcm: Pcm
    voice: float | None  # probability that the frame holds speech; None: no detector
    gain_db: float | None = None  # the gain control's current gain; None: no gain control


class Engine(Protocol):
    name: str
    cancels_echo: bool

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        """One capture frame and, for an echo canceller, the playback it may hear."""

    def set_delay_ms(self, delay_ms: int) -> None:
        """How far the reference given to ``process`` leads the echo it causes."""


@dataclass(frozen=True)
class Libraries:
    """What this machine can load, found once per kit."""

    backend: Backend
    module: ModuleType | None
    reason: str = ""  # why a better backend is missing

    @classmethod
    def load(cls) -> Libraries:
        try:
            return cls(Backend.WEBRTC, importlib.import_module("pywebrtc_audio"))
        except ImportError as err:
            webrtc_missing = f"WebRTC audio processing (pywebrtc_audio) cannot be loaded: {err}"
        try:
            module = importlib.import_module("speexdsp")
        except ImportError as err:
            reason = f"{webrtc_missing}; speexdsp cannot be loaded either: {err}"
            log.error(
                "NO AUDIO PROCESSING: %s. The far end will hear its own echo from the "
                "loudspeaker; install pywebrtc-audio (or speexdsp)",
                reason,
            )
            return cls(Backend.NONE, None, reason)
        log.warning(
            "%s. Falling back to speexdsp's echo canceller: no noise suppression, no gain "
            "control, voice activity from the level only",
            webrtc_missing,
        )
        return cls(Backend.SPEEX, module, webrtc_missing)

    def engine(self, config: RoomAudioConfig, *, processing: bool) -> Engine | None:
        """An engine for one route: full processing, or (``processing`` False) only the
        voice detector. None when nothing here can do it."""
        module = self.module
        if module is None:
            return None
        if self.backend is Backend.WEBRTC:
            if not processing:
                return WebRtcVoiceDetector(module)
            return WebRtcEngine(module, config)
        if processing and config.echo_cancellation:
            return SpeexEngine(module)
        return None


class WebRtcEngine:
    """WebRTC's APM pipeline: high-pass, AEC3, noise suppression, AGC2."""

    def __init__(self, module: ModuleType, config: RoomAudioConfig) -> None:
        self.cancels_echo = config.echo_cancellation
        self._agc = config.gain_control
        self._apm = module.AudioProcessor(
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            echo_cancellation=config.echo_cancellation,
            noise_suppression=config.noise_suppression,
            high_pass_filter=True,
            auto_gain_control=config.gain_control,
            ns_level=config.noise_suppression_level,
        )
        parts = [
            name
            for name, on in (
                ("AEC3", config.echo_cancellation),
                ("NS", config.noise_suppression),
                ("AGC2", config.gain_control),
            )
            if on
        ]
        self.name = "webrtc " + "+".join(parts or ["high-pass"])

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        if self.cancels_echo and far is None:
            far = np.zeros_like(near)
        out = self._apm.process(near, far if self.cancels_echo else None)
        return Processed(
            out,
            float(self._apm.speech_probability),
            float(self._apm.gain_db) if self._agc else None,
        )

    def set_delay_ms(self, delay_ms: int) -> None:
        self._apm.stream_delay_ms = max(0, delay_ms)


class WebRtcVoiceDetector:
    """No processing (headphones, headsets): the audio passes untouched, but the voice
    probability still feeds the active speaker."""

    name = "webrtc voice detector"
    cancels_echo = False

    def __init__(self, module: ModuleType) -> None:
        self._vad = module.VoiceDetector(sample_rate=SAMPLE_RATE, num_channels=1)

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        return Processed(near, float(self._vad.process(near)))

    def set_delay_ms(self, delay_ms: int) -> None:
        pass


class SpeexEngine:
    """speexdsp's MDF echo canceller: a long linear filter, no residual suppression."""

    name = "speexdsp echo canceller"
    cancels_echo = True

    def __init__(self, module: ModuleType) -> None:
        self._aec = module.EchoCanceller.create(
            FRAME_SAMPLES, round(SPEEX_TAIL_SECONDS * SAMPLE_RATE), SAMPLE_RATE
        )

    def process(self, near: Pcm, far: Pcm | None) -> Processed:
        if len(near) != FRAME_SAMPLES:
            raise ValueError(f"speexdsp takes {FRAME_SAMPLES}-sample frames, got {len(near)}")
        if far is None:
            far = np.zeros_like(near)
        out = self._aec.process(near.tobytes(), np.ascontiguousarray(far, np.int16).tobytes())
        return Processed(np.frombuffer(out, dtype=np.int16).copy(), None)

    def set_delay_ms(self, delay_ms: int) -> None:
        pass  # speex has no delay estimator: the stage's alignment is all it gets
