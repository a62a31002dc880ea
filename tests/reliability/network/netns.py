"""A LAN of network namespaces made by the test: a hub (a bridge, where the session server
runs) and one namespace per kit, each kit on the bridge through a veth pair. Cutting a kit
(``ip link set lan0 down`` in its namespace) cuts its media and its signaling, as pulling
its cable would. The test reaches each namespace over a management veth of its own, which
is never cut, so it can watch a kit through its REST API while the kit's LAN is down; it
carries no route between kits.

Loss, delay and jitter: ``tc netem`` on the kit's LAN side where the kernel has it,
otherwise the datagram shim of ``impair.py`` inside the kit process (both act on what the
kit sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.reliability.network.impair import Impairment

LAN = "lan0"  # a kit's interface on the bridge


class NetnsUnavailable(Exception):
    """Why namespaces cannot be made here (not root, no iproute2, refused)."""


async def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", "netns", "exec", netns, *args] if netns else list(args)
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if check and process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {err.decode().strip()}")
    return out.decode()


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` (Debian's iproute2)"
    return None


@dataclass(frozen=True)
class Host:
    """A namespace on the LAN: its address there, and where the test reaches it."""

    netns: str
    lan_address: str
    reach: str  # its management address, from the test's namespace


class Lan:
    def __init__(self, kits: list[str]) -> None:
        self._prefix = f"cbx{secrets.token_hex(2)}"
        self._octet = secrets.randbelow(200) + 20  # 10.87.N.0/24 LAN, 10.88.N.0/24 links
        n = self._octet
        self.hub = Host(f"{self._prefix}-hub", f"10.87.{n}.1", f"10.88.{n}.2")
        self.kits = {
            uid: Host(f"{self._prefix}-{i}", f"10.87.{n}.{10 + i}", f"10.88.{n}.{4 * i + 2}")
            for i, uid in enumerate(kits, start=1)
        }
        self.netem = False
        self._made: list[str] = []

    async def create(self) -> None:
        n, p = self._octet, self._prefix
        hub = self.hub.netns
        for host in [self.hub, *self.kits.values()]:
            await ip("ip", "netns", "add", host.netns)
            self._made.append(host.netns)
            await ip("ip", "link", "set", "lo", "up", netns=host.netns)
        await ip("ip", "link", "add", "br0", "type", "bridge", netns=hub)
        await ip("ip", "addr", "add", f"{self.hub.lan_address}/24", "dev", "br0", netns=hub)
        await ip("ip", "link", "set", "br0", "up", netns=hub)
        await self._management(hub, f"{p}m0", f"10.88.{n}.1")
        for i, host in enumerate(self.kits.values(), start=1):
            kit_end, hub_end = f"{p}k{i}", f"{p}h{i}"
            await ip("ip", "link", "add", kit_end, "type", "veth", "peer", "name", hub_end)
            await ip("ip", "link", "set", hub_end, "netns", hub)
            await ip("ip", "link", "set", hub_end, "master", "br0", netns=hub)
            await ip("ip", "link", "set", hub_end, "up", netns=hub)
            await ip("ip", "link", "set", kit_end, "netns", host.netns)
            await ip("ip", "link", "set", kit_end, "name", LAN, netns=host.netns)
            await ip("ip", "addr", "add", f"{host.lan_address}/24", "dev", LAN, netns=host.netns)
            await ip("ip", "link", "set", LAN, "up", netns=host.netns)
            await self._management(host.netns, f"{p}m{i}", f"10.88.{n}.{4 * i + 1}")
        self.netem = await self._has_netem()

    async def _management(self, netns: str, name: str, ours: str) -> None:
        """A /30 from the test's namespace to ``netns``: ``ours`` here, the next one there."""
        theirs = ours.rsplit(".", 1)[0] + "." + str(int(ours.rsplit(".", 1)[1]) + 1)
        peer = name + "x"
        await ip("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        await ip("ip", "link", "set", peer, "netns", netns)
        await ip("ip", "addr", "add", f"{ours}/30", "dev", name)
        await ip("ip", "link", "set", name, "up")
        await ip("ip", "addr", "add", f"{theirs}/30", "dev", peer, netns=netns)
        await ip("ip", "link", "set", peer, "up", netns=netns)

    async def _has_netem(self) -> bool:
        host = next(iter(self.kits.values()))
        try:
            await ip(
                "tc",
                "qdisc",
                "replace",
                "dev",
                LAN,
                "root",
                "netem",
                "delay",
                "0ms",
                netns=host.netns,
            )
        except RuntimeError:
            return False  # "Specified qdisc kind is unknown": the shim does it
        await ip("tc", "qdisc", "del", "dev", LAN, "root", netns=host.netns)
        return True

    async def destroy(self) -> None:
        for netns in reversed(self._made):  # their veths (and the peers here) go with them
            await ip("ip", "netns", "del", netns, check=False)
        self._made.clear()

    # --- faults --------------------------------------------------------------------------

    async def cut(self, uid: str) -> None:
        await ip("ip", "link", "set", LAN, "down", netns=self.kits[uid].netns)

    async def reconnect(self, uid: str) -> None:
        await ip("ip", "link", "set", LAN, "up", netns=self.kits[uid].netns)

    async def impair_with_netem(self, uid: str, impairment: Impairment) -> None:
        netns = self.kits[uid].netns
        if impairment == Impairment():
            await ip("tc", "qdisc", "del", "dev", LAN, "root", netns=netns, check=False)
            return
        await ip(
            "tc", "qdisc", "replace", "dev", LAN, "root", "netem",
            "loss", f"{impairment.loss * 100:g}%",
            "delay", f"{impairment.delay_ms:g}ms", f"{impairment.jitter_ms:g}ms",
            netns=netns,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def lan(kits: list[str]) -> AsyncIterator[Lan]:
    reason = unavailable_reason()
    if reason is not None:
        raise NetnsUnavailable(reason)
    network = Lan(kits)
    try:
        try:
            await network.create()
        except RuntimeError as err:
            raise NetnsUnavailable(str(err)) from None
        yield network
    finally:
        await network.destroy()
