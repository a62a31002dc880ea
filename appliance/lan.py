"""The kit on the LAN through mDNS (``appliance.discovery``): its session server and its
API announced, and, for a kit with no ``server.url``, the session server found and its
certificate pinned (the first one found, then only one with that fingerprint)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from appliance.api import ApiServer
from appliance.config import Config, split_hostport
from appliance.discovery import Discovery, FoundServer, Pinned, own_address
from appliance.errors import DaemonError
from appliance.server import SessionServer
from appliance.tls import ClientTrust, ServerTls, parse_fingerprint

log = logging.getLogger(__name__)


def looks_for_server(config: Config) -> bool:
    """A kit of another machine's server with no ``server.url`` looks for one."""
    server = config.server
    return config.discovery.enabled and not server.embedded and "url" not in server.model_fields_set


class LanPresence:
    def __init__(self, config: Config, state_dir: Path) -> None:
        self._config = config
        self._state_dir = state_dir
        self.discovery = Discovery(list(config.discovery.interfaces) or None)
        self.found_server: FoundServer | None = None  # the server found on the LAN

    async def close(self) -> None:
        await self.discovery.close()

    def _address(self, listen: str) -> str:
        configured = self._config.discovery.address
        if configured:
            return configured
        host = split_hostport(listen)[0]
        if host not in ("", "0.0.0.0", "::", "localhost") and ":" not in host:
            return host
        return own_address()

    async def announce_server(self, server: SessionServer, tls: ServerTls | None) -> None:
        if tls is None:
            log.warning("mDNS: the session server is not announced: LAN discovery needs TLS")
            return
        address = self._address(self._config.server.listen)
        await self.discovery.announce_server(
            self._config.kit.uid, address, server.port, tls.fingerprint
        )

    async def announce_kit(self, api: ApiServer, fingerprint: str | None) -> None:
        """The kit's API, then the kits of the LAN watched (GET /api/v1/discovery/kits)."""
        port = urlsplit(api.url).port or 0
        address = self._address(self._config.api.listen)
        scheme = "https" if api.tls is not None else "http"
        kit = self._config.kit
        await self.discovery.announce_kit(
            kit.uid, kit.name, address, f"{scheme}://{address}:{port}", port, fingerprint
        )
        await self.discovery.watch_kits()

    async def find_server(self) -> tuple[str, ClientTrust]:
        """The session server announced on the LAN: its URL, and its fingerprint to pin."""
        pinned = Pinned.load(self._state_dir)
        wait = self._config.discovery.wait
        try:
            found = await self.discovery.find_server(wait, pinned)
        except TimeoutError:
            if pinned is None:
                raise DaemonError(
                    f"no session server announced itself on the LAN in {wait:g} s "
                    "(set server.url, or start one: callbox server)"
                ) from None
            log.warning("mDNS: the pinned server did not answer; trying %s", pinned.url)
            found = FoundServer(pinned.instance, pinned.url, pinned.fingerprint)
        if pinned is None:
            Pinned(found.instance, found.fingerprint, found.url).save(self._state_dir)
            log.warning(
                "mDNS: joined the session server %s at %s; pinned its certificate %s",
                found.instance, found.url, found.fingerprint,
            )  # fmt: skip
        self.found_server = found
        return found.url, aiohttp.Fingerprint(parse_fingerprint(found.fingerprint))
