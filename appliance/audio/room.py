"""The kit's room audio: the ``[audio]`` settings, the audio libraries this machine has,
the echo delay measured on each route, and the processing stage of the call in progress.
One per kit (``Calls.audio``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.audio.delay import EchoDelayStore
from appliance.audio.engines import Libraries
from appliance.audio.settings import RoomAudioConfig
from appliance.audio.stage import ProcessingStage, Warn
from hal.audio.base import Route

ECHO_DELAYS_FILE = "echo_delays.json"


class RoomAudio:
    def __init__(
        self,
        config: RoomAudioConfig | None = None,
        *,
        state_dir: Path | None = None,
        libraries: Libraries | None = None,
    ) -> None:
        self.config = config or RoomAudioConfig()
        self.libraries = libraries or Libraries.load()
        self.delays = EchoDelayStore(state_dir / ECHO_DELAYS_FILE if state_dir else None)
        self.stage: ProcessingStage | None = None  # the call in progress

    def start_call(self, warn: Warn | None = None) -> ProcessingStage:
        self.stage = ProcessingStage(self.config, self.libraries, self.delays, warn)
        return self.stage

    async def end_call(self, stage: ProcessingStage) -> None:
        await stage.close()
        if self.stage is stage:
            self.stage = None

    def echo_delays(self) -> dict[str, dict[str, Any]]:
        """The measured playback-to-capture delay of each route, by route name:
        ``{"SPEAKER": {"route": "SPEAKER", "delay_ms": 42.5, "confidence": 0.71,
        "measured_at": 1700000000.0}}``. Routes never measured are absent."""
        return {route.value: delay.to_json() for route, delay in self.delays.all().items()}

    def status(self) -> dict[str, Any]:
        """What the audio does now, for the REST API: the library in use, which routes are
        processed, the echo delays, and the current call's route and voice probability."""
        stage = self.stage
        last = stage.last if stage is not None else None
        return {
            "backend": self.libraries.backend.value,
            "backend_problem": self.libraries.reason or None,
            "processing": {route.value: self.config.processes(route) for route in Route},
            "echo_delays": self.echo_delays(),
            "call": None
            if stage is None
            else {
                "route": stage.route.value if stage.route else None,
                "voice_probability": last.voice if last else None,
                "gain_db": last.gain_db if last else None,
                "too_slow": stage.too_slow,  # processing given up: this CPU could not keep up
            },
        }
