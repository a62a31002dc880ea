"""What the API's handlers act on: one kit's call API, controller, hardware and screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from appliance.api.auth import TokenStore
from appliance.calls import Calls, DisplayMode
from appliance.config import Config
from appliance.discovery import Discovery
from appliance.kit import KitController
from appliance.rest_layer import ASOUND_CONF
from appliance.selftest import SelfTest
from appliance.server import SessionServer
from appliance.tls import ClientTrust
from hal.registry import Hardware


class Screen(Protocol):
    """The compositor as the API uses it (``appliance.display.compositor.Compositor``)."""

    def snapshot_rgb(self) -> npt.NDArray[np.uint8]: ...

    async def snapshot_png(self) -> bytes: ...

    async def next_frame(self, after: int) -> tuple[int, npt.NDArray[np.uint8]]: ...

    def set_mode(self, mode: DisplayMode) -> Any: ...

    def select(self, uid: str | None) -> Any: ...

    def move_tile(self, uid: str, x: int, y: int) -> Any: ...


@dataclass
class ApiContext:
    config: Config  # as the daemon started with it
    calls: Calls
    kit: KitController
    hardware: Hardware
    auth_token: str  # the kit's session-server auth token (call log, guests' server)
    server_url: str
    tokens: TokenStore
    session_server: SessionServer | None = None
    screen: Screen | None = None
    base_layer: dict[str, Any] = field(default_factory=dict)  # config below REST overrides
    server_trust: ClientTrust = True  # how server_url is checked when it is https
    # Where PCM names the REST layer may use are defined (the system's asound.conf).
    asound_conf: Path = ASOUND_CONF
    # Ports this daemon listens on itself (a new api.listen may reuse them after a restart).
    own_ports: set[int] = field(default_factory=set)
    # What the operator should know: shown in GET /api/v1/health and on the screen.
    warnings: list[str] = field(default_factory=list)
    # The hardware self-test (POST /api/v1/selftest; its last report in the health reply).
    selftest: SelfTest | None = None
    # mDNS on the LAN, when [discovery] is enabled: the kits announced there.
    discovery: Discovery | None = None
