"""``[audio]`` in the config file: what the room audio does on each route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hal.audio.base import Route


def _default_routes() -> dict[Route, bool]:
    # A loudspeaker (and an earpiece held near the microphone) couples back into the room's
    # microphone; headphones and Bluetooth headsets do not, and headsets process themselves.
    return {
        Route.SPEAKER: True,
        Route.EARPIECE: True,
        Route.HEADPHONES: False,
        Route.BLUETOOTH: False,
    }


class RoomAudioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # auto: process on the routes marked true in `routes`; on: every route; off: none.
    processing: Literal["auto", "on", "off"] = "auto"
    routes: dict[Route, bool] = Field(default_factory=_default_routes)
    echo_cancellation: bool = True
    noise_suppression: bool = True
    noise_suppression_level: int = Field(1, ge=0, le=3)  # 6, 12, 18, 21 dB
    gain_control: bool = True
    # A short chirp measures a route's playback-to-capture delay for the echo canceller:
    # "once" plays it when a call first uses a route with no stored measurement (set-up, a
    # new speaker), "every-call" at every call start and route change, "off" never.
    measure_echo_delay: Literal["once", "every-call", "off"] = "once"
    ringtones: bool = True
    ring_level_db: float = Field(0.0, ge=-40.0, le=0.0)  # relative to the shipped files

    def processes(self, route: Route) -> bool:
        """Whether a call on ``route`` goes through echo cancellation, noise suppression
        and gain control."""
        if self.processing == "off":
            return False
        if self.processing == "on":
            return True
        return self.routes.get(route, _default_routes()[route])
