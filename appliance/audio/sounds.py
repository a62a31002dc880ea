"""The ringtones shipped in ``appliance/sounds``: how they are made and how they are read.

``python -m appliance.audio.sounds`` writes them again (Ogg/Opus, mono 48 kHz, a few KB):
- ``ring.ogg``: the incoming-call ring, a two-note chime (A5 then C#6, bell-like partials,
  each struck twice), then silence; 3 s, played in a loop.
- ``ringback.ogg``: the outgoing-call ring-back tone, 425 Hz for 1 s then 4 s of silence
  (the CEPT/ETSI cadence); 5 s, played in a loop.
"""

from __future__ import annotations

import argparse
import math
from importlib import resources
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from hal.audio.base import SAMPLE_RATE, Pcm
from hal.audio.pcm import dbfs_to_amplitude

RING = "ring.ogg"
RINGBACK = "ringback.ogg"
RING_NOTES_HZ = (880.0, 1108.73)  # A5, C#6: a major third
RINGBACK_HZ = 425.0
RINGBACK_ON_SECONDS = 1.0
RINGBACK_OFF_SECONDS = 4.0
BITRATE = 32_000


class SoundError(Exception):
    pass


def _seconds(duration: float) -> npt.NDArray[np.float64]:
    return np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE


def synthesize_ring() -> Pcm:
    cycle = np.zeros(round(3.0 * SAMPLE_RATE))
    strike = _seconds(0.6)
    for index, start in enumerate((0.0, 0.25, 0.5, 0.75)):
        hz = RING_NOTES_HZ[index % 2]
        # A struck bell: the fundamental rings longest, the upper partials die fast.
        note = (
            np.sin(2 * math.pi * hz * strike) * np.exp(-strike / 0.25)
            + 0.3 * np.sin(2 * math.pi * 2 * hz * strike) * np.exp(-strike / 0.1)
            + 0.15 * np.sin(2 * math.pi * 3 * hz * strike) * np.exp(-strike / 0.05)
        )
        attack = round(0.004 * SAMPLE_RATE)
        note[:attack] *= np.linspace(0.0, 1.0, attack)
        first = round(start * SAMPLE_RATE)
        cycle[first : first + len(note)] += note
    cycle *= dbfs_to_amplitude(-3.0) / np.max(np.abs(cycle))
    return np.rint(cycle).astype(np.int16)


def synthesize_ringback() -> Pcm:
    on = _seconds(RINGBACK_ON_SECONDS)
    tone = np.sin(2 * math.pi * RINGBACK_HZ * on) * dbfs_to_amplitude(-10.0)
    ramp = round(0.005 * SAMPLE_RATE)  # no click at either edge
    tone[:ramp] *= np.linspace(0.0, 1.0, ramp)
    tone[-ramp:] *= np.linspace(1.0, 0.0, ramp)
    silence = np.zeros(round(RINGBACK_OFF_SECONDS * SAMPLE_RATE))
    return np.rint(np.concatenate((tone, silence))).astype(np.int16)


def write_sound(path: Path, pcm: Pcm) -> None:
    """Mono 48 kHz PCM to an Ogg/Opus file."""
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = BITRATE
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def decode(path: Path) -> Pcm:
    """Any audio file PyAV reads, as mono int16 at 48 kHz."""
    try:
        with av.open(str(path)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.FFmpegError, OSError, IndexError) as err:
        raise SoundError(f"cannot read {path}: {err}") from err
    if not chunks:
        raise SoundError(f"{path} holds no audio")
    return np.concatenate(chunks).astype(np.int16)


def shipped(name: str) -> Path:
    """The path of a sound shipped in the package."""
    return Path(str(resources.files("appliance") / "sounds" / name))


def load(name: str) -> Pcm:
    return decode(shipped(name))


def main() -> None:
    parser = argparse.ArgumentParser(description="write the shipped ringtones again")
    parser.add_argument("directory", type=Path, nargs="?", default=shipped(""))
    args = parser.parse_args()
    for name, pcm in ((RING, synthesize_ring()), (RINGBACK, synthesize_ringback())):
        write_sound(args.directory / name, pcm)
        print(args.directory / name, (args.directory / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
