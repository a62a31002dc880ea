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

import aiohttp

from appliance.api import ApiServer
from appliance.calls import Calls, MediaOptions, SessionState
from appliance.config import Config, ConfigError, TlsConfig, split_hostport, validate
from appliance.discovery import (
    JoinRefused,
    request_to_join,
)
from appliance.display import Compositor, HomeInfo
from appliance.display.address import api_address
from appliance.errors import DaemonError
from appliance.kit import KitController
from appliance.lan import LanPresence, looks_for_server
from appliance.memory import IdleTrim
from appliance.metrics import THERMAL_DIR, KitMetrics
from appliance.rest_layer import ASOUND_CONF
from appliance.selftest import Report, SelfTest, SelfTestBusy, Status
from appliance.server import SessionServer, UserExists
from appliance.storage import atomic_write_text, discard_interrupted_writes
from appliance.systemd import NotifyError, Supervisor
from appliance.tasks import TaskSet
from appliance.tls import (
    ClientTrust,
    ServerTls,
    TlsError,
    client_trust,
    pinned,
    server_tls,
)
from hal.camera.base import VideoFormat
from hal.registry import Hardware, KitIdentity, build_hardware

log = logging.getLogger(__name__)

AUTH_TOKEN_FILE = "auth_token"
# How long start-up waits for a session server on another machine before the kit starts
# without it (and keeps reconnecting): a kit must come up even when the LAN server is down.
SERVER_PATIENCE = 5.0
# A freshly made API token is on the screen until it is first used, or this long.
TOKEN_SHOWN_FOR = 300.0
TOKEN_HINT = "API token: in the log of its first start (journalctl -u callbox), or rotate it"


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        base_layer: dict[str, Any] | None = None,
        config_problem: str | None = None,
        asound_conf: Path = ASOUND_CONF,
        thermal_dir: Path = THERMAL_DIR,
    ) -> None:
        self.config = config
        self._thermal_dir = thermal_dir  # where GET /metrics reads temperatures
        # The config below the REST overrides (the file's data), for PATCH /api/v1/config.
        self._base_layer = base_layer
        self._asound_conf = asound_conf
        # What the operator must know (REST overrides that did not load, a REST-set
        # address that could not be used): logged, on the screen and in the health reply.
        self.warnings: list[str] = [config_problem] if config_problem else []
        # The API token on the screen: shown until first used, or this long after it is made.
        self.token_shown_for = TOKEN_SHOWN_FOR
        self.shown_api_token: str | None = None
        self._token_timer: asyncio.TimerHandle | None = None
        self.server: SessionServer | None = None
        self.hardware: Hardware | None = None
        self.calls: Calls | None = None
        self.kit: KitController | None = None
        self.api: ApiServer | None = None
        self.compositor: Compositor | None = None
        self.selftest: SelfTest | None = None
        self.idle_trim: IdleTrim | None = None
        self.lan: LanPresence | None = None  # mDNS, when [discovery] enabled
        self.server_note: str | None = None  # on the idle screen: which server it joined
        self.server_url: str | None = None
        # The self-test the daemon runs at start (tests await it).
        self.boot_selftest: asyncio.Task[None] | None = None
        # SHA-256 of the certificate the REST API (else the session server) serves, if TLS.
        self.tls_fingerprint: str | None = None
        self._stop = asyncio.Event()
        # What started, to stop in the reverse order: each component pushes its stop once
        # it runs, so a start that failed half-way stops exactly what it started.
        self._components = contextlib.AsyncExitStack()
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
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # tokens, keys
        if leftovers := discard_interrupted_writes(self.state_dir):
            log.warning("removed %d temp files of interrupted writes", len(leftovers))
        server_side = await self._tls(config.server.tls) if config.server.embedded else None
        api_tls = await self._tls(config.api.tls)
        shown = api_tls or server_side
        self.tls_fingerprint = shown.fingerprint if shown is not None else None
        if config.server.embedded:
            self.server = SessionServer(config.server, config.database_path, tls=server_side)
            await self.server.start()
            self._components.push_async_callback(self.server.stop)
            log.info("session server listening on %s", self.server.url)
        server_url = self.server.url if self.server else config.server.url
        trust = self._server_trust(server_side)
        if config.discovery.enabled:
            self.lan = LanPresence(config, self.state_dir)
            self._components.push_async_callback(self.lan.close)
            if self.server is not None:
                await self.lan.announce_server(self.server, server_side)
        if self.lan is not None and looks_for_server(config):
            server_url, trust = await self.lan.find_server()
            self.server_note = f"Session server found on the LAN: {server_url}"
        self.server_url = server_url
        auth_token = await self._auth_token(trust)
        self.hardware = build_hardware(config.hal, KitIdentity(config.kit.uid, config.kit.name))
        self._components.push_async_callback(self.hardware.close)
        self._log_hardware(self.hardware)
        if self.hardware.bluetooth is not None:
            # Reports the headsets already connected, so the Bluetooth route is there at once.
            await self.hardware.bluetooth.start()
        camera = config.hal.camera
        self.calls = Calls(
            server_url=server_url,
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
        self._components.push_async_callback(self.compositor.stop)
        self._components.push_async_callback(self.calls.close)  # ends the call: peers see it
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
        self._components.push_async_callback(self.kit.close)
        calls = self.calls
        self.idle_trim = IdleTrim(calls)
        trimming = TaskSet(log)
        self.supervisor.watch(trimming.spawn(self.idle_trim.follow(), "trim when idle"))
        self._components.push_async_callback(trimming.close)
        self.selftest = SelfTest(
            self.hardware,
            camera_format=VideoFormat(camera.width, camera.height, camera.fps),
            screen=self.compositor,
            busy=lambda: calls.state != SessionState.IDLE,
        )
        self.selftest.on_report.append(self._selftest_done)
        calls.before_devices.append(self.selftest.yield_devices)
        self.api = ApiServer(
            config,
            calls=self.calls,
            kit=self.kit,
            hardware=self.hardware,
            auth_token=auth_token,
            server_url=server_url,
            session_server=self.server,
            screen=self.compositor,
            base_layer=self._base_layer,
            tls=api_tls,
            server_trust=trust,
            warnings=self.warnings,
            asound_conf=self._asound_conf,
            metrics=KitMetrics(
                self.calls,
                name=config.kit.name,
                thermal_dir=self._thermal_dir,
                server_collectors=self.server.metrics.collectors if self.server else (),
                audio_xruns=self.hardware.audio_xruns,
            ),
            selftest=self.selftest,
            discovery=self.lan.discovery if self.lan is not None else None,
        )
        # Stopped first: no request may act on what is closing after it.
        self._components.push_async_callback(self.api.stop)
        await self._start_api(self.api)
        self._show_home(self.api.tokens.fresh_token)
        self.api.tokens.on_new_token.append(self._show_home)
        self.api.tokens.on_first_use.append(self._hide_token)
        if self.lan is not None:
            await self.lan.announce_kit(self.api, self.tls_fingerprint)
        self.boot_selftest = asyncio.create_task(self._run_boot_selftest(), name="self-test")
        if self.calls.connected:
            self._log_ready()
        else:
            self.calls.on_reconnected.append(self._log_ready)
            log.warning(
                "%s (%s) is up but not ready for calls: the session server at %s does not "
                "answer; calls wait until it does",
                config.kit.name,
                config.kit.uid,
                self.calls.server_url,
            )

    def _log_ready(self) -> None:
        """Logs "ready": calls can be made (hardware, API and the session server are up)."""
        if self.calls is not None:
            with contextlib.suppress(ValueError):
                self.calls.on_reconnected.remove(self._log_ready)  # once
        log.info("%s (%s) is ready", self.config.kit.name, self.config.kit.uid)

    async def _run_boot_selftest(self) -> None:
        """The self-test at start, in the background: the kit takes calls meanwhile."""
        assert self.selftest is not None
        try:
            await self.selftest.run()
        except SelfTestBusy as err:
            log.info("self-test at start skipped: %s", err.message)
        except Exception:  # a bug in a check must not take the kit down
            log.exception("self-test at start failed")
        if self.idle_trim is not None:
            await self.idle_trim.settled()  # start-up's and the self-test's buffers are freed

    def _selftest_done(self, report: Report) -> None:
        """The report on the screen, or as a blink code on the LEDs when there is none."""
        self._paint_home(self.shown_api_token)
        screen_ok = any(c.kind == "screen" and c.status == Status.OK for c in report.checks)
        if not screen_ok and self.selftest is not None:
            self.selftest.show_blink_code(report)

    async def _start_api(self, api: ApiServer) -> None:
        """Listen where the config says; if a REST-set ``api.listen`` cannot be used, where
        the config file says, so a bad change over REST never leaves the kit without its API."""
        try:
            await api.start()
        except OSError as err:
            wanted = self.config.api.listen
            file_listen = self._file_listen()
            if file_listen is None or file_listen == wanted:
                raise
            problem = (
                f"cannot listen on {wanted} (set over the REST API): {err.strerror or err}; "
                f"listening on {file_listen} from the config file instead"
            )
            log.error("%s", problem)
            self.warnings.append(problem)
            await api.start(listen=file_listen)

    def _file_listen(self) -> str | None:
        """``api.listen`` as the config file (without REST overrides) says."""
        if self._base_layer is None:
            return None
        try:
            return validate(self._base_layer).api.listen
        except ConfigError:
            return None

    def _show_home(self, api_token: str | None) -> None:
        """The idle screen: name, API address, and a freshly made API token, shown until
        it is first used or for ``token_shown_for`` seconds, then only where to find it."""
        if self._token_timer is not None:
            self._token_timer.cancel()
            self._token_timer = None
        if api_token is not None:
            loop = asyncio.get_running_loop()
            self._token_timer = loop.call_later(self.token_shown_for, self._hide_token)
        self._paint_home(api_token)

    def _hide_token(self) -> None:
        if self._token_timer is not None:
            self._token_timer.cancel()
            self._token_timer = None
        self._paint_home(None)

    def _paint_home(self, api_token: str | None) -> None:
        self.shown_api_token = api_token
        if self.compositor is not None:
            port = urlsplit(self.api.url).port if self.api is not None else None
            address = api_address(self.config.api.listen, port)
            hint = None if api_token else TOKEN_HINT
            report = self.selftest.last if self.selftest is not None else None
            home = HomeInfo(
                self.config.kit.name,
                address,
                True,
                api_token,
                self.tls_fingerprint,
                token_hint=hint,
                warning=self.warnings[-1] if self.warnings else None,
                selftest=report.summary() if report is not None else None,
                selftest_ok=report.ok if report is not None else True,
                server_note=self.server_note,
            )
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

    async def _auth_token(self, trust: ClientTrust) -> str:
        """The kit's auth token: from config, else the one saved in the state directory,
        else (embedded server) a new user made for this kit, else (a server found on the
        LAN) the one its operator gives this kit by approving its join request."""
        config = self.config
        if config.server.auth_token:
            return config.server.auth_token
        path = self.state_dir / AUTH_TOKEN_FILE
        with contextlib.suppress(FileNotFoundError):
            saved = path.read_text().strip()
            if saved:
                return saved
        found = self.lan.found_server if self.lan is not None else None
        if self.server is None and found is not None:
            log.info("waiting for %s to approve this kit", found.url)
            try:
                token = await request_to_join(
                    found.url,
                    trust,
                    uid=config.kit.uid,
                    name=config.kit.name,
                    fingerprint=self.tls_fingerprint,
                    state_dir=self.state_dir,
                    wait=config.discovery.approval_wait,
                )
            except TimeoutError:
                raise DaemonError(
                    f"the session server at {found.url} has not approved this kit "
                    f"yet (its operator: GET and POST /v1/join-requests); trying again"
                ) from None
            except (JoinRefused, aiohttp.ClientError) as err:
                raise DaemonError(f"joining {found.url}: {err}") from None
            atomic_write_text(path, token + "\n")
            return token
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
        if self.boot_selftest is not None:
            self.boot_selftest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.boot_selftest
            self.boot_selftest = None
        if self.selftest is not None:
            await self.selftest.close()
        if self._token_timer is not None:
            self._token_timer.cancel()
            self._token_timer = None
        await self._components.aclose()
