"""Whether the room audio's processing keeps up with the microphone.

WebRTC's processing costs a Pi 4 a few percent of one core. A CPU that needs more than the
audio's own duration for it (a much slower board, an emulator) would send a fraction of the
microphone, later and later, and the far side would hear almost nothing: better to send it
unprocessed. The cost is the worker thread's CPU time (``time.thread_time``), which a busy
machine's waiting does not inflate.
"""

from __future__ import annotations

from dataclasses import dataclass

SHARE = 0.75  # of the audio's duration the processing may take, on average over a window
WINDOW_SECONDS = 1.0
WINDOWS = 2  # windows over budget in a row: too slow (the first blocks warm the engine up)


@dataclass
class CpuBudget:
    share: float = SHARE
    window_seconds: float = WINDOW_SECONDS
    windows: int = WINDOWS
    _cpu: float = 0.0
    _audio: float = 0.0
    _over: int = 0
    cost: float = 0.0  # CPU seconds per second of audio, over the last whole window

    def add(self, cpu_seconds: float, audio_seconds: float) -> bool:
        """Adds a batch's cost; True once ``windows`` whole windows in a row were over."""
        self._cpu += cpu_seconds
        self._audio += audio_seconds
        if self._audio < self.window_seconds:
            return False
        self.cost = self._cpu / self._audio
        self._over = self._over + 1 if self.cost > self.share else 0
        self._cpu = self._audio = 0.0
        return self._over >= self.windows
