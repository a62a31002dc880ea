"""An alsa-lib configuration for tests: every route's PCM writes raw samples to its own file
(``type file`` over ``type null``), the microphone reads a file, and a route can instead
write to a FIFO whose reader the test can pull away, as a card that disappears."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hal.audio.base import SAMPLE_RATE
from hal.audio.pcm import tone

PCMS = {
    "capture": "test_mic",
    "speaker": "test_speaker",
    "earpiece": "test_earpiece",
    "headphones": "test_headphones",
    "bluetooth": "test_bluealsa",
}


class FifoReader:
    """Drains a FIFO on a thread, keeping what it read; ``unplug`` closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = bytearray()
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(BlockingIOError):
                self.data += os.read(self._fd, 1 << 16)

    def unplug(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)


class PacedSource:
    """Feeds a FIFO 20 ms of samples every 20 ms, as a microphone captures, so the file
    plugin's capture (which reads the FIFO) is paced like a card. The FIFO is held open at
    both ends from the start: pyalsaaudio opens PCMs without releasing the GIL, so a feeder
    thread could not answer an open that waits for a writer."""

    def __init__(self, path: Path, samples: np.ndarray[Any, Any]) -> None:
        self.path = path
        self._data = samples.astype("<i2").tobytes()
        self._keeper = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never reads
        self._fd = os.open(path, os.O_WRONLY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        period, chunk = 0.02, 2 * 960
        start = time.monotonic()
        for sent, offset in enumerate(range(0, len(self._data), chunk), start=1):
            if self._stop.is_set():
                return
            try:
                os.write(self._fd, self._data[offset : offset + chunk])
            except BrokenPipeError:  # stopped while the FIFO was full
                return
            self._stop.wait(max(0.0, start + sent * period - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        os.close(self._keeper)  # a writer blocked on a full FIFO wakes with EPIPE
        self._thread.join(timeout=2)
        os.close(self._fd)


@dataclass
class AlsaSetup:
    root: Path
    mic_samples: np.ndarray[Any, Any]
    fifos: dict[str, FifoReader] = field(default_factory=dict)
    source: PacedSource | None = None

    def output_file(self, route: str) -> Path:
        return self.root / f"{route}.raw"

    def played(self, route: str) -> np.ndarray[Any, Any]:
        reader = self.fifos.get(route)
        data = bytes(reader.data) if reader else self.output_file(route).read_bytes()
        return np.frombuffer(data[: len(data) // 2 * 2], "<i2")

    def hal_audio(self, **overrides: Any) -> dict[str, Any]:
        return {"backend": "real", **PCMS, **overrides}

    def close(self) -> None:
        if self.source is not None:
            self.source.stop()
        for reader in self.fifos.values():
            with contextlib.suppress(OSError):
                reader.unplug()


def write_alsa_config(
    root: Path,
    *,
    mic_tone_hz: float,
    mic_seconds: float = 30.0,
    fifo_routes: tuple[str, ...] = (),
    paced_microphone: bool = False,
) -> AlsaSetup:
    """``paced_microphone``: the microphone delivers in real time (for calls) rather than
    as fast as it is read."""
    root.mkdir(parents=True, exist_ok=True)
    frames = int(mic_seconds * SAMPLE_RATE / 960)
    mic = np.concatenate(list(tone(mic_tone_hz, level_dbfs=-10, frames=frames)))
    setup = AlsaSetup(root, mic)
    if paced_microphone:
        os.mkfifo(root / "mic.raw")
        setup.source = PacedSource(root / "mic.raw", mic)
    else:
        mic.astype("<i2").tofile(root / "mic.raw")
    lines = [
        "pcm.null { type null }",
        f'pcm.{PCMS["capture"]} {{ type file slave.pcm "null" file "/dev/null" '
        f'infile "{root / "mic.raw"}" format "raw" }}',
    ]
    for route in ("speaker", "earpiece", "headphones", "bluetooth"):
        path = setup.output_file(route)
        if route in fifo_routes:
            os.mkfifo(path)
            setup.fifos[route] = FifoReader(path)
        lines.append(
            f'pcm.{PCMS[route]} {{ type file slave.pcm "null" file "{path}" format "raw" }}'
        )
    (root / "asound.conf").write_text("\n".join(lines) + "\n")
    return setup
