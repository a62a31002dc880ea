"""Two kit processes and a session server on a LAN of network namespaces (``netns.py``),
and what tests and benchmarks do with them: start a call, wait for media, hang up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.network.impair import Impairment
from tests.reliability.network.netns import Lan, lan
from tests.reliability.network.processes import KitProcess, ServerProcess

TONES = {"room-a": 400.0, "room-b": 650.0}


@dataclass
class Network:
    lan: Lan
    server: ServerProcess
    kits: dict[str, KitProcess]

    async def impair(self, uid: str, impairment: Impairment) -> None:
        if self.lan.netem:
            await self.lan.impair_with_netem(uid, impairment)
        else:
            impairment.write(self.kits[uid].impairment)


@contextlib.asynccontextmanager
async def running_network(
    tmp: Path, tones: dict[str, float] = TONES
) -> AsyncIterator[Network]:
    """A kit per entry of ``tones`` (uid: its microphone's tone). Raises NetnsUnavailable
    where namespaces cannot be made."""
    async with lan(list(tones)) as lan_:
        hub = lan_.hub
        server = ServerProcess(
            tmp / "server", "0.0.0.0:8090", url=f"http://{hub.reach}:8090", netns=hub.netns
        )
        await server.start()
        kits: dict[str, KitProcess] = {}
        try:
            for uid, tone in tones.items():
                host = lan_.kits[uid]
                kits[uid] = KitProcess(
                    tmp / uid,
                    uid,
                    tone_hz=tone,
                    server_url=f"http://{hub.lan_address}:8090",
                    auth_token=await server.create_user(uid, uid.title()),
                    api_address=host.reach,
                    netns=host.netns,
                )
            await asyncio.gather(*(kit.start() for kit in kits.values()))
            yield Network(lan_, server, kits)
        finally:
            for kit in kits.values():
                await kit.stop()
            await server.stop()


async def flowing(receiver: KitProcess, sender: str, frames: int = 15, timeout: float = 30) -> None:
    """Until ``receiver`` has decoded ``frames`` more video frames from ``sender`` and plays
    its audio (the fake microphone's tone, sent at -10 dBFS)."""
    first = (await receiver.received_from(sender))["video_frames"]
    async with asyncio.timeout(timeout):
        while True:
            now = await receiver.received_from(sender)
            if now["video_frames"] - first >= frames and now["audio_level_dbfs"] > -40:
                return
            await asyncio.sleep(0.25)


async def start_call(network: Network, session_id: str) -> tuple[KitProcess, KitProcess]:
    a, b = network.kits["room-a"], network.kits["room-b"]
    await a.call("PUT", "/session", {"session_id": session_id})
    await b.call("PUT", "/session", {"session_id": session_id})
    await b.wait_for("onUserJoined", lambda d: d["uid"] == "room-a")
    await flowing(a, "room-b")
    await flowing(b, "room-a")
    return a, b


async def idle(kit: KitProcess, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while (await kit.session())["state"] != "idle":
            await asyncio.sleep(0.25)


async def hang_up(network: Network) -> None:
    for kit in network.kits.values():
        if (await kit.session())["state"] == "active":
            # The far kit's call may end by itself meanwhile (a 1:1 call): 409 then.
            await kit.call("DELETE", "/session", allow=409)
    for kit in network.kits.values():
        await idle(kit)
