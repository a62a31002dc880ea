"""Kits and session servers finding each other on the LAN with mDNS/DNS-SD (python-zeroconf).

A session server announces ``_callbox-server._tcp`` with the SHA-256 fingerprint of its TLS
certificate in its TXT record; a kit announces ``_callbox._tcp`` (uid, name, API address,
fingerprint). Announcements are network input: each field is checked, and nothing is trusted
because it was announced. A kit that found a server pins its fingerprint (the TLS connection
checks the certificate against it), and from then on refuses an announcement of the same
service with another fingerprint (a spoof, or a server reinstalled: the operator decides).
Joining still needs the server's consent (``appliance.server.joins``).

Each daemon has its own ``Discovery`` (its own zeroconf instance): several run in one test
process, on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance import __version__
from appliance.storage import atomic_write_text
from appliance.tls import ClientTrust

log = logging.getLogger(__name__)

SERVER_TYPE = "_callbox-server._tcp.local."
KIT_TYPE = "_callbox._tcp.local."
PINNED_FILE = "discovered_server.json"
RESOLVE_MS = 3000
FINGERPRINT = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 64


class DiscoveryError(Exception):
    """An announcement that cannot be used, with why."""


@dataclass(frozen=True)
class FoundServer:
    instance: str  # the DNS-SD instance name
    url: str  # https://address:port
    fingerprint: str  # AA:BB:... upper case


@dataclass(frozen=True)
class FoundKit:
    uid: str
    name: str
    api: str  # the kit's REST API, as it announced it
    fingerprint: str | None


def _text(properties: dict[bytes, bytes | None], key: str) -> str | None:
    raw = properties.get(key.encode())
    if raw is None:
        return None
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DiscoveryError(f"{key}: not UTF-8") from None
    if len(value) > 256 or any(ord(c) < 32 for c in value):
        raise DiscoveryError(f"{key}: too long, or control characters")
    return value


def _fingerprint(value: str | None) -> str:
    if value is None:
        raise DiscoveryError("fp: missing (a server without TLS is not used from the LAN)")
    upper = value.upper()
    if not FINGERPRINT.match(upper):
        raise DiscoveryError("fp: not a SHA-256 fingerprint (AA:BB:... 32 bytes)")
    return upper


def _address(info: AsyncServiceInfo) -> str:
    for text in info.parsed_scoped_addresses(IPVersion.V4Only):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            continue
        return text
    raise DiscoveryError("no IPv4 address")


def server_from(info: AsyncServiceInfo) -> FoundServer:
    """A server's announcement, checked; raises DiscoveryError naming what is wrong."""
    properties = info.properties or {}
    fingerprint = _fingerprint(_text(properties, "fp"))
    port = info.port
    if port is None or not 1 <= port <= 65535:
        raise DiscoveryError("port: out of range")
    return FoundServer(info.name, f"https://{_address(info)}:{port}", fingerprint)


def kit_from(info: AsyncServiceInfo) -> FoundKit:
    properties = info.properties or {}
    uid = _text(properties, "uid")
    if uid is None or not UID.match(uid):
        raise DiscoveryError("uid: missing or not a user id")
    name = (_text(properties, "name") or uid)[:MAX_TEXT]
    api = _text(properties, "api")
    if api is None or not re.match(r"^https?://[^\s/]+$", api):
        raise DiscoveryError("api: missing or not an http(s) address")
    fingerprint = _text(properties, "fp")
    return FoundKit(uid, name, api, _fingerprint(fingerprint) if fingerprint else None)


@dataclass(frozen=True)
class Pinned:
    """The server a kit found first, kept in its state directory."""

    instance: str
    fingerprint: str
    url: str

    @classmethod
    def load(cls, state_dir: Path) -> Pinned | None:
        try:
            data = json.loads((state_dir / PINNED_FILE).read_text())
            return cls(
                str(data["instance"]), _fingerprint(str(data["fingerprint"])), str(data["url"])
            )
        except (OSError, ValueError, KeyError, TypeError, DiscoveryError):
            return None

    def save(self, state_dir: Path) -> None:
        atomic_write_text(state_dir / PINNED_FILE, json.dumps(asdict(self)) + "\n")


class Discovery:
    """One daemon's mDNS: what it announces and what it looks for. ``interfaces``: where
    to speak mDNS (all by default; tests use ``["127.0.0.1"]``)."""

    def __init__(self, interfaces: list[str] | None = None) -> None:
        self._interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._announced: list[AsyncServiceInfo] = []
        self._kit_browser: AsyncServiceBrowser | None = None
        self.kits: dict[str, FoundKit] = {}  # by DNS-SD instance name
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._zc is None:
            interfaces: list[str] | InterfaceChoice = (
                list(self._interfaces) if self._interfaces else InterfaceChoice.All
            )
            # On the loop: zeroconf runs its protocol on the loop it is made on. Making it
            # binds a few UDP sockets, which does not block.
            self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)

    @property
    def zeroconf(self) -> Zeroconf:
        if self._zc is None:
            raise RuntimeError("discovery has not started")
        return self._zc.zeroconf

    async def close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        if self._kit_browser is not None:
            await self._kit_browser.async_cancel()
            self._kit_browser = None
        for task in list(self._tasks):
            task.cancel()
        for info in self._announced:
            await zc.async_unregister_service(info)
        self._announced.clear()
        await zc.async_close()

    # --- announcing ----------------------------------------------------------------------

    async def announce_server(
        self, instance: str, address: str, port: int, fingerprint: str
    ) -> None:
        await self._announce(
            SERVER_TYPE, instance, address, port, {"fp": fingerprint, "v": __version__}
        )

    async def announce_kit(
        self,
        uid: str,
        name: str,
        address: str,
        api_url: str,
        api_port: int,
        fingerprint: str | None,
    ) -> None:
        properties = {"uid": uid, "name": name[:MAX_TEXT], "api": api_url, "v": __version__}
        if fingerprint:
            properties["fp"] = fingerprint
        await self._announce(KIT_TYPE, uid, address, api_port, properties)

    async def _announce(
        self, kind: str, instance: str, address: str, port: int, properties: dict[str, str]
    ) -> None:
        await self.start()
        assert self._zc is not None
        label = re.sub(r"[^A-Za-z0-9-]", "-", instance)[:MAX_TEXT] or "callbox"
        info = AsyncServiceInfo(
            kind,
            f"{label}.{kind}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties=properties,
            server=f"{label}-{kind.split('.')[0].lstrip('_')}.local.",
        )
        await self._zc.async_register_service(info, allow_name_change=True)
        self._announced.append(info)
        log.info("mDNS: announcing %s as %s on %s:%d", kind.rstrip("."), info.name, address, port)

    # --- looking -------------------------------------------------------------------------

    async def find_server(self, timeout: float, pinned: Pinned | None = None) -> FoundServer:
        """The first session server announced that passes the checks (and, with
        ``pinned``, has that fingerprint; another is refused and logged). Raises
        TimeoutError when none shows up in ``timeout`` seconds."""
        await self.start()
        zeroconf = self.zeroconf
        found: asyncio.Queue[str] = asyncio.Queue()

        def on_change(
            zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
                found.put_nowait(name)

        browser = AsyncServiceBrowser(zeroconf, SERVER_TYPE, handlers=[on_change])
        try:
            async with asyncio.timeout(timeout):
                while True:
                    name = await found.get()
                    server = await self._resolve_server(name)
                    if server is None:
                        continue
                    if pinned is not None and server.fingerprint != pinned.fingerprint:
                        log.warning(
                            "mDNS: refused %s at %s: its fingerprint %s is not the pinned %s "
                            "(a spoof, or the server was reinstalled: delete %s to accept it)",
                            name, server.url, server.fingerprint, pinned.fingerprint, PINNED_FILE,
                        )  # fmt: skip
                        continue
                    return server
        finally:
            await browser.async_cancel()

    async def _resolve_server(self, name: str) -> FoundServer | None:
        info = AsyncServiceInfo(SERVER_TYPE, name)
        if not await info.async_request(self.zeroconf, RESOLVE_MS):
            return None
        try:
            return server_from(info)
        except DiscoveryError as err:
            log.warning("mDNS: ignored the server announced as %s: %s", name, err)
            return None

    async def watch_kits(self) -> None:
        """Keep ``kits`` up to date with the kits announced on the LAN."""
        await self.start()
        if self._kit_browser is not None:
            return

        def on_change(
            zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if state_change == ServiceStateChange.Removed:
                self.kits.pop(name, None)
                return
            task = asyncio.get_running_loop().create_task(self._resolve_kit(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._kit_browser = AsyncServiceBrowser(self.zeroconf, KIT_TYPE, handlers=[on_change])

    async def _resolve_kit(self, name: str) -> None:
        info = AsyncServiceInfo(KIT_TYPE, name)
        if not await info.async_request(self.zeroconf, RESOLVE_MS):
            return
        try:
            self.kits[name] = kit_from(info)
        except DiscoveryError as err:
            log.warning("mDNS: ignored the kit announced as %s: %s", name, err)


# --- asking a found server to let this kit in ------------------------------------------

JOIN_FILE = "join_request.json"
POLL_SECONDS = 1.0


class JoinRefused(Exception):
    """The server's operator rejected this kit, or the server refused the request."""


async def request_to_join(
    url: str,
    trust: ClientTrust,
    *,
    uid: str,
    name: str,
    fingerprint: str | None,
    state_dir: Path,
    wait: float,
) -> str:
    """File a join request at the server (or go on polling the one filed before, kept in
    the state directory) and return this kit's auth token once the operator approves.
    Raises TimeoutError after ``wait`` seconds, JoinRefused when rejected."""
    path = state_dir / JOIN_FILE
    ssl = trust
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        filed = _load_join(path, url)
        if filed is None:
            body = {"uid": uid, "name": name[:MAX_TEXT]}
            if fingerprint:
                body["fingerprint"] = fingerprint
            async with http.post(f"{url}/v1/join-requests", json=body, ssl=ssl) as response:
                reply = await _json(response)
                if response.status != 202:
                    raise JoinRefused(_error(reply, response.status))
            filed = {"url": url, "id": int(reply["id"]), "secret": str(reply["secret"])}
            atomic_write_text(path, json.dumps(filed) + "\n", mode=0o600)
            log.warning(
                "asked %s to let %s in (request %s): approve it on the control page of the "
                "kit hosting that server (Asking to join), or with "
                "POST /v1/join-requests/%s/approve and the server's admin key",
                url, uid, filed["id"], filed["id"],
            )  # fmt: skip
        headers = {"Authorization": f"Bearer {filed['secret']}"}
        async with asyncio.timeout(wait):
            while True:
                poll = f"{url}/v1/join-requests/{filed['id']}"
                async with http.get(poll, headers=headers, ssl=ssl) as response:
                    reply = await _json(response)
                if response.status == 404:  # the server restarted and forgot it: ask again
                    path.unlink(missing_ok=True)
                    raise JoinRefused("the server no longer knows this kit's request")
                status = reply.get("status")
                if status == "approved" and isinstance(reply.get("auth_token"), str):
                    path.unlink(missing_ok=True)
                    return str(reply["auth_token"])
                if status == "rejected":
                    path.unlink(missing_ok=True)
                    raise JoinRefused("the server's operator rejected this kit")
                await asyncio.sleep(POLL_SECONDS)


def _load_join(path: Path, url: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("url") != url:
        return None
    if not isinstance(data.get("id"), int) or not isinstance(data.get("secret"), str):
        return None
    return data


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _error(reply: dict[str, Any], status: int) -> str:
    error = reply.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"{error['message'][:200]} ({status})"
    return f"refused ({status})"


def own_address() -> str:
    """This machine's IPv4 address on its default route (no packet is sent), else
    loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"
