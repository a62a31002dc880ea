"""``callbox run``: wires config, hardware, the (embedded) session server, the call API and
the buttons, and runs until SIGINT/SIGTERM, ending any call cleanly on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.api import ApiServer
from appliance.calls import Calls, MediaOptions
from appliance.config import Config, TlsConfig, split_hostport
from appliance.display import Compositor, HomeInfo
from appliance.display.address import api_address
from appliance.kit import KitController
from appliance.server import SessionServer, UserExists
from appliance.storage import atomic_write_text, discard_interrupted_writes
from appliance.systemd import NotifyError, Supervisor
from appliance.tls import ClientTrust, ServerTls, TlsError, client_trust, pinned, server_tls
from hal.camera.base import VideoFormat
from hal.registry import Hardware, KitIdentity, build_hardware

log = logging.getLogger(__name__)

AUTH_TOKEN_FILE = "auth_token"
# How long start-up waits for a session server on another machine before the kit starts
# without it (and keeps reconnecting): a kit must come up even when the LAN server is down.
SERVER_PATIENCE = 5.0


class DaemonError(Exception):
    """A start-up problem the operator must fix (config, missing hardware, no server)."""


class Daemon:
    def __init__(self, config: Config, *, base_layer: dict[str, Any] | None = None) -> None:
        self.config = config
        # The config below the REST overrides (the file's data), for PATCH /api/v1/config.
        self._base_layer = base_layer
        self.server: SessionServer | None = None
        self.hardware: Hardware | None = None
        self.calls: Calls | None = None
        self.kit: KitController | None = None
        self.api: ApiServer | None = None
        self.compositor: Compositor | None = None
        # SHA-256 of the certificate the REST API (else the session server) serves, if TLS.
        self.tls_fingerprint: str | None = None
        self._stop = asyncio.Event()
        # systemd notifications and the watchdog; ``supervisor.watch(task)`` makes a
        # background task's crash stop the daemon with a non-zero exit.
        try:
            self.supervisor = Supervisor.from_environ(on_failure=self.request_stop)
        except NotifyError as err:
            raise DaemonError(str(err)) from None

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    async def start(self) -> None:
        config = self.config
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if leftovers := discard_interrupted_writes(self.state_dir):
            log.warning("removed %d temp files of interrupted writes", len(leftovers))
        server_side = await self._tls(config.server.tls) if config.server.embedded else None
        api_tls = await self._tls(config.api.tls)
        shown = api_tls or server_side
        self.tls_fingerprint = shown.fingerprint if shown is not None else None
        if config.server.embedded:
            self.server = SessionServer(config.server, config.database_path, tls=server_side)
            await self.server.start()
            log.info("session server listening on %s", self.server.url)
        auth_token = await self._auth_token()
        self.hardware = build_hardware(config.hal, KitIdentity(config.kit.uid, config.kit.name))
        self._log_hardware(self.hardware)
        if self.hardware.bluetooth is not None:
            # Reports the headsets already connected, so the Bluetooth route is there at once.
            await self.hardware.bluetooth.start()
        camera = config.hal.camera
        trust = self._server_trust(server_side)
        self.calls = Calls(
            server_url=self.server.url if self.server else config.server.url,
            uid=config.kit.uid,
            auth_token=auth_token,
            hardware=self.hardware,
            options=MediaOptions(
                video_format=VideoFormat(camera.width, camera.height, camera.fps),
                recordings_dir=config.recordings_dir,
                audio=config.audio,
                state_dir=self.state_dir,
            ),
            server_trust=trust,
        )
        # The screen: the call's view, composing even without a display (for display.png).
        display = config.hal.display
        self.compositor = Compositor(
            self.hardware.display,
            self.calls,
            size=(display.width, display.height),
            fps=display.fps,
        )
        self.calls.view = self.compositor
        if self.hardware.pointer is not None:
            self.compositor.attach_pointer(self.hardware.pointer)
        await self.compositor.start()
        await self.calls.connect(patience=SERVER_PATIENCE)
        self.kit = KitController(
            self.calls,
            auth_token,
            default_settings=config.calls.default_settings,
            auto_answer=config.calls.auto_answer,
            end_needs_hold=config.calls.end_needs_hold,
            buttons=self.hardware.buttons,
        )
        self.kit.start()
        self.api = ApiServer(
            config,
            calls=self.calls,
            kit=self.kit,
            hardware=self.hardware,
            auth_token=auth_token,
            server_url=self.server.url if self.server else config.server.url,
            session_server=self.server,
            screen=self.compositor,
            base_layer=self._base_layer,
            tls=api_tls,
            server_trust=trust,
        )
        await self.api.start()
        self._show_home(self.api.tokens.fresh_token)
        self.api.tokens.on_new_token.append(self._show_home)
        log.info("%s (%s) is ready", config.kit.name, config.kit.uid)

    def _show_home(self, api_token: str | None) -> None:
        """The idle screen: name, API address, and a freshly made API token."""
        if self.compositor is not None:
            port = urlsplit(self.api.url).port if self.api is not None else None
            address = api_address(self.config.api.listen, port)
            home = HomeInfo(self.config.kit.name, address, True, api_token, self.tls_fingerprint)
            self.compositor.set_home(home)

    async def _tls(self, settings: TlsConfig) -> ServerTls | None:
        """The TLS of a listening socket, if enabled: the configured certificate, or the
        state directory's self-signed one (made now on first start)."""
        if not settings.enabled:
            return None
        hosts = [split_hostport(self.config.server.listen)[0]]
        hosts.append(split_hostport(self.config.api.listen)[0])
        try:
            return await asyncio.to_thread(
                server_tls, settings.cert, settings.key, self.state_dir, hosts
            )
        except TlsError as err:
            raise DaemonError(str(err)) from None

    def _server_trust(self, embedded: ServerTls | None) -> ClientTrust:
        """How the kit checks its session server: its own certificate when embedded, else
        the configured CA file or fingerprint (or the system's CAs)."""
        if embedded is not None:
            return pinned(embedded)
        try:
            return client_trust(self.config.server.ca_file, self.config.server.fingerprint)
        except TlsError as err:
            raise DaemonError(str(err)) from None

    async def _auth_token(self) -> str:
        """The kit's auth token: from config, else the one saved in the state directory,
        else (embedded server) a new user made for this kit."""
        config = self.config
        if config.server.auth_token:
            return config.server.auth_token
        path = self.state_dir / AUTH_TOKEN_FILE
        with contextlib.suppress(FileNotFoundError):
            saved = path.read_text().strip()
            if saved:
                return saved
        if self.server is None:
            raise DaemonError(
                "server.auth_token is not set and the session server is not embedded: "
                f"create this kit's user with `callbox users add {config.kit.uid} --name ...` "
                "on the server and put the token in the config"
            )
        try:
            token = await self.server.create_user(config.kit.uid, config.kit.name)
        except UserExists:  # the saved token was lost: issue a new one
            token = await self.server.rotate_auth_token(config.kit.uid)
        atomic_write_text(path, token + "\n")
        return token

    def _log_hardware(self, hardware: Hardware) -> None:
        fake = sorted(kind for kind, how in hardware.kinds.items() if how == "fake")
        for kind, how in sorted(hardware.kinds.items()):
            log.info("hardware: %s is %s", kind, how)
        if fake:
            log.warning(
                "FAKE HARDWARE in use for: %s (not a Raspberry Pi, or config says so)",
                ", ".join(fake),
            )

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        supervisor = self.supervisor
        supervisor.start()
        supervisor.set_status("Starting")
        try:
            await self.start()
            assert self.calls is not None
            supervisor.follow_calls(self.calls)
            if not self._stop.is_set():
                supervisor.ready()  # last of all: hardware, server connection and API are up
            await self._stop.wait()
            log.info("stopping")
        finally:
            supervisor.stopping("Stopping: ending any call")
            try:
                await self.stop()
            finally:
                await supervisor.close()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        supervisor.raise_if_failed()

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()  # first: no request may act on what is closing below
        if self.kit is not None:
            await self.kit.close()
        if self.calls is not None:
            await self.calls.close()  # ends the call: peers see the kit leave
        if self.compositor is not None:
            await self.compositor.stop()
        if self.hardware is not None:
            await self.hardware.close()
        if self.server is not None:
            await self.server.stop()
