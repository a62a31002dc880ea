"""``ApiServer``: the REST API, the events WebSocket and the web pages on one aiohttp app
inside the daemon, listening where ``[api] listen`` says (loopback by default)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from appliance.api import models as m
from appliance.api import openapi
from appliance.api.auth import TokenStore
from appliance.api.config_api import ConfigApi
from appliance.api.context import ApiContext, Screen
from appliance.api.devices import DevicesApi
from appliance.api.display import DisplayApi
from appliance.api.guests import GuestsApi
from appliance.api.joins import JoinsApi
from appliance.api.lan import LanApi
from appliance.api.pages import Pages
from appliance.api.records import RecordsApi
from appliance.api.routing import MAX_BODY_BYTES, Endpoint, Raw, bind, json_errors
from appliance.api.session import SessionApi
from appliance.calls import Calls
from appliance.config import Config, split_hostport
from appliance.discovery import Discovery
from appliance.jsonwire import json_response
from appliance.kit import KitController
from appliance.metrics import KitMetrics
from appliance.netguard import ConnectionGuard, start_site
from appliance.rest_layer import ASOUND_CONF
from appliance.selftest import SelfTest
from appliance.server import SessionServer
from appliance.tls import ClientTrust, ServerTls
from hal.registry import Hardware

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 3.0
KEEPALIVE_TIMEOUT = 15.0  # an idle kept-alive HTTP connection is closed after this


class EndpointGroup(Protocol):
    def endpoints(self) -> list[Endpoint]: ...


class ApiServer:
    def __init__(
        self,
        config: Config,
        *,
        calls: Calls,
        kit: KitController,
        hardware: Hardware,
        auth_token: str,
        server_url: str,
        session_server: SessionServer | None = None,
        screen: Screen | None = None,
        base_layer: dict[str, Any] | None = None,
        tls: ServerTls | None = None,
        server_trust: ClientTrust = True,
        warnings: list[str] | None = None,
        asound_conf: Path = ASOUND_CONF,
        metrics: KitMetrics | None = None,
        selftest: SelfTest | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.tls = tls  # https and wss when set (appliance.tls.server_tls)
        self.tokens = TokenStore(config.state_dir, config.api.token)
        self.context = ApiContext(
            config=config,
            calls=calls,
            kit=kit,
            hardware=hardware,
            auth_token=auth_token,
            server_url=server_url,
            tokens=self.tokens,
            session_server=session_server,
            screen=screen,
            base_layer=base_layer if base_layer is not None else config.model_dump(),
            server_trust=server_trust,
            warnings=warnings if warnings is not None else [],
            asound_conf=asound_conf,
            selftest=selftest,
            discovery=discovery,
        )
        self._closing = asyncio.Event()
        self.session = SessionApi(self.context, self._closing)
        self.guests = GuestsApi(self.context, self._closing)
        self.records = RecordsApi(self.context)
        self._groups: list[EndpointGroup] = [
            self.session,
            ConfigApi(self.context),
            self.records,
            DevicesApi(self.context),
            LanApi(self.context),
            JoinsApi(self.context),
            DisplayApi(self.context, self._closing),
            self.guests,
        ]
        self._pages = Pages()
        self.metrics = metrics or KitMetrics(
            calls,
            name=config.kit.name,
            server_collectors=session_server.metrics.collectors if session_server else (),
        )
        self.endpoints: list[Endpoint] = [
            Endpoint(
                "GET",
                "/metrics",
                self._metrics,
                "The kit's figures in Prometheus' text format (docs/METRICS.md)",
                "kit",
                raw=Raw(CONTENT_TYPE_LATEST, {"type": "string"}),
            ),
            Endpoint(
                "GET",
                "/api/v1/openapi.json",
                self._openapi,
                "This document",
                "kit",
                auth=False,
                raw=Raw("application/json", {"type": "object"}),
            ),
            Endpoint(
                "POST",
                "/api/v1/token/rotate",
                self._rotate,
                "Replace the API token; the old one stops working at once",
                "kit",
                reply=m.NewToken,
                errors={409: "The token is fixed in the config file"},
            ),
        ]
        for group in self._groups:
            self.endpoints += group.endpoints()
        self.document = openapi.build(self.endpoints, extra_models=(m.EventMessage,))
        self.app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
        self.app.add_routes([bind(e, self.tokens) for e in self.endpoints])
        self.app.add_routes(self._pages.routes())
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.guard: ConnectionGuard | None = None

    @property
    def screen(self) -> Screen | None:
        return self.context.screen

    @screen.setter
    def screen(self, screen: Screen | None) -> None:
        self.context.screen = screen

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the API is not running")
        return self._url

    async def start(self, listen: str | None = None) -> None:
        """Listen on ``listen`` (default: ``[api] listen``), then load (or make) the token:
        a start that fails (the address is taken: OSError) makes none, so the token a
        first start prints is the one that works. Until it is loaded, every token is
        refused."""
        if self._runner is not None:
            return
        await self._pages.load()
        host, port = split_hostport(listen or self.context.config.api.listen)
        runner, self.guard = await start_site(
            self.app,
            "REST API",
            host,
            port,
            self.context.config.api.limits,
            ssl_context=self.tls.context if self.tls is not None else None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        self._runner = runner
        await self.tokens.load()
        bound = runner.addresses[0]
        self.context.own_ports.add(bound[1])
        if self.context.session_server is not None:
            self.context.own_ports.add(self.context.session_server.port)
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        scheme = "https" if self.tls is not None else "http"
        self._url = f"{scheme}://{f'[{shown}]' if ':' in shown else shown}:{bound[1]}"
        where = "the LAN" if host not in ("127.0.0.1", "::1", "localhost") else "loopback only"
        log.info("REST API and web pages on %s (%s)", self._url, where)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()  # long-lived streams and sockets end now
        await self.session.close()
        await self.guests.close()
        await runner.cleanup()
        await self.records.close()
        self._url = None

    async def _openapi(self, request: web.Request) -> web.Response:
        return json_response(self.document)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _rotate(self, request: web.Request) -> m.NewToken:
        return m.NewToken(token=await self.tokens.rotate())
