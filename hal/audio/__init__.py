from hal.audio.base import (
    CHANNELS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioDevices,
    AudioError,
    AudioOutput,
    Microphone,
    Route,
)

__all__ = [
    "CHANNELS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioDevices",
    "AudioError",
    "AudioOutput",
    "Microphone",
    "Route",
]
