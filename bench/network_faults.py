"""Network faults: how long a call takes to come back, and to end, when the network fails.

Two ``callbox run`` processes in network namespaces on a bridged LAN with the session server
(as ``tests/reliability/network/test_faults.py``, root only): loss and jitter on both kits
(frames decoded per second, RTP lost, restarts), LAN cuts of one kit of several lengths
(seconds from the LAN's return to decoded video both ways again, ICE restarts), and a cut
past the give-up bound (seconds from the cut to ``onCallEnded`` at each kit). Then, without
namespaces, the session server restarted mid-call under two in-process kits: seconds from
the server being back to both kits reconnected and a mute made meanwhile seen at the far
kit, while the far camera's frames keep coming."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from appliance.calls.calls import RECONNECT_MAX
from appliance.media.mesh import GIVE_UP_AFTER
from bench.common import Result, Target, median
from tests.kits import Kit, KitFactory, free_port
from tests.reliability.network.impair import Impairment
from tests.reliability.network.lan_calls import Network, hang_up, running_network, start_call
from tests.reliability.network.netns import NetnsUnavailable, unavailable_reason
from tests.reliability.network.processes import KitProcess, ServerProcess

POLL = 0.1


async def run(quick: bool) -> Result:
    losses = [0.05] if quick else [0.10]
    impaired_seconds = 3.0 if quick else 10.0
    cuts = [3.0] if quick else [10.0, 20.0]
    long_cut = None if quick else GIVE_UP_AFTER + 15
    server_downtimes = [1.0] if quick else [2.0, 10.0]
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {}
    notes = [
        "two kits at 320x240, 15 fps; `python -m bench network_faults`",
        "impairment: loss with 100 +- 100 ms delay on what each kit sends (netem if the "
        "kernel has it, else the datagram shim of tests/reliability/network/impair.py)",
    ]
    targets: list[Target] = []
    with tempfile.TemporaryDirectory() as tmp:
        absent = unavailable_reason()
        if absent is None:
            try:
                async with running_network(Path(tmp) / "lan") as network:
                    notes.append("netem" if network.lan.netem else "shim (no netem here)")
                    await _lossy(network, losses, impaired_seconds, rows, figures)
                    recovered = await _cuts(network, cuts, rows, figures)
                    if 10.0 in cuts:
                        worst = max(recovered[10.0])
                        targets.append(
                            Target("10 s cut: media back within 10 s", worst, worst < 10)
                        )
                    if long_cut is not None:
                        ended = await _long_cut(network, long_cut, rows, figures)
                        bound = GIVE_UP_AFTER + 2
                        targets.append(
                            Target(f"long cut: both ended within {bound:g} s", ended, ended < bound)
                        )
            except NetnsUnavailable as err:
                absent = str(err)
        if absent is not None:
            notes.append(f"network rows skipped: {absent}")
        back = await _server_restarts(Path(tmp) / "restart", server_downtimes, rows, figures)
        bound = RECONNECT_MAX * 1.2 + 2
        targets.append(
            Target(f"server restart: kits back within {bound:g} s", max(back), max(back) < bound)
        )
    return Result(
        name="network_faults",
        title="Network faults: recovery and give-up",
        figures=figures,
        columns=["fault", "while it lasted", "after it", "ICE restarts"],
        rows=rows,
        targets=targets,
        notes=notes,
    )


async def _lossy(
    network: Network,
    losses: list[float],
    seconds: float,
    rows: list[list[Any]],
    figures: dict[str, Any],
) -> None:
    a, b = await start_call(network, "bench-lossy")
    for loss in losses:
        impairment = Impairment(loss=loss, delay_ms=100, jitter_ms=100)
        before = [await a.received_from("room-b"), await b.received_from("room-a")]
        for uid in network.kits:
            await network.impair(uid, impairment)
        await asyncio.sleep(seconds)
        after = [await a.received_from("room-b"), await b.received_from("room-a")]
        for uid in network.kits:
            await network.impair(uid, Impairment())
        fps = min(
            (n["video_frames"] - o["video_frames"]) / seconds
            for o, n in zip(before, after, strict=True)
        )
        lost = sum(
            n["packets_lost"] - o["packets_lost"] for o, n in zip(before, after, strict=True)
        )
        restarts = sum(n["restarts"] - o["restarts"] for o, n in zip(before, after, strict=True))
        figures[f"loss_{loss:g}"] = {"fps": fps, "rtp_lost": lost, "restarts": restarts}
        rows.append(
            [
                f"{loss * 100:g} % loss, 100 +- 100 ms",
                f"{fps:.1f} fps decoded (of 15), {lost} RTP lost",
                "-",
                restarts,
            ]
        )
    await hang_up(network)


async def _cuts(
    network: Network, cuts: list[float], rows: list[list[Any]], figures: dict[str, Any]
) -> dict[float, list[float]]:
    recovered: dict[float, list[float]] = {}
    loop = asyncio.get_running_loop()
    for n, seconds in enumerate(cuts):
        a, b = await start_call(network, f"bench-cut-{n}")
        restarts_before = (await a.received_from("room-b"))["restarts"]
        marks = {kit.uid: len(kit.events) for kit in (a, b)}
        await network.lan.cut("room-a")
        await asyncio.sleep(seconds)
        await network.lan.reconnect("room-a")
        back = loop.time()
        await asyncio.gather(_decoding(a, "room-b"), _decoding(b, "room-a"))
        took = loop.time() - back
        async with asyncio.timeout(10):  # the link's own check (once a second) has seen it
            while (await a.received_from("room-b"))["connection"] != "connected":
                await asyncio.sleep(POLL)
        restarts = (await a.received_from("room-b"))["restarts"] - restarts_before
        recovered.setdefault(seconds, []).append(took)
        ended = [e for kit in (a, b) for e in kit.named("onCallEnded", marks[kit.uid])]
        rows.append(
            [
                f"LAN cut {seconds:g} s",
                "no media",
                f"media back {took:.1f} s after the LAN" if not ended else "call ended",
                restarts,
            ]
        )
        await hang_up(network)
    figures["cut_recovery_s"] = {f"{s:g}": median(v) for s, v in recovered.items()}
    return recovered


async def _decoding(kit: KitProcess, sender: str, frames: int = 3) -> None:
    first = (await kit.received_from(sender))["video_frames"]
    async with asyncio.timeout(60):
        while (await kit.received_from(sender))["video_frames"] - first < frames:
            await asyncio.sleep(POLL)


async def _long_cut(
    network: Network, seconds: float, rows: list[list[Any]], figures: dict[str, Any]
) -> float:
    a, b = await start_call(network, "bench-long-cut")
    marks = {kit.uid: len(kit.events) for kit in (a, b)}
    loop = asyncio.get_running_loop()
    await network.lan.cut("room-a")
    cut_at = loop.time()
    ended: dict[str, float] = {}
    async with asyncio.timeout(seconds + 30):
        while len(ended) < 2:
            for kit in (a, b):
                if kit.uid not in ended and kit.named("onCallEnded", marks[kit.uid]):
                    ended[kit.uid] = loop.time() - cut_at
            await asyncio.sleep(POLL)
    await asyncio.sleep(max(0.0, seconds - (loop.time() - cut_at)))
    await network.lan.reconnect("room-a")
    async with asyncio.timeout(30):
        while not (await a.call("GET", "/health"))["session_server"]["connected"]:
            await asyncio.sleep(POLL)
    figures["long_cut_ended_s"] = ended
    rows.append(
        [
            f"LAN cut {seconds:g} s",
            f"ended: cut kit {ended['room-a']:.1f} s, far kit {ended['room-b']:.1f} s in",
            "idle; cut kit back on its server",
            "-",
        ]
    )
    return max(ended.values())


async def _server_restarts(
    tmp: Path, downtimes: list[float], rows: list[list[Any]], figures: dict[str, Any]
) -> list[float]:
    server = ServerProcess(tmp / "server", f"127.0.0.1:{free_port()}")
    await server.start()
    factory = KitFactory(server, tmp)  # type: ignore[arg-type]  # what it uses of a server
    loop = asyncio.get_running_loop()
    back_after: list[float] = []
    try:
        a, b = await factory("room-a"), await factory("room-b")
        await a.join("bench-restart")
        await b.join("bench-restart")
        await b.wait_for_video_from("room-a", timeout=20)
        for muted, down in zip([True, False] * len(downtimes), downtimes, strict=False):
            await server.stop()
            frames = b.view.counts.get("room-a", 0)
            await a.calls.mute_audio(muted)
            await asyncio.sleep(down)
            during = b.view.counts.get("room-a", 0) - frames
            mark = len(b.events)
            await server.start()
            started = loop.time()
            await b.wait_for(
                "onUserMuted",
                lambda d, muted=muted: d["is_muted"] is muted and d["muted"]["uid"] == "room-a",
                timeout=60,
                after=mark,
            )
            while not (a.calls.connected and b.calls.connected):
                await asyncio.sleep(POLL)
            took = loop.time() - started
            back_after.append(took)
            rows.append(
                [
                    f"server down {down:g} s",
                    f"{during / down:.1f} fps still decoded",
                    f"both back, mute re-synced {took:.1f} s after it started",
                    _restarts(a) + _restarts(b),
                ]
            )
    finally:
        await factory.close()
        await server.stop()
    figures["server_restart_back_s"] = back_after
    return back_after


def _restarts(kit: Kit) -> int:
    snapshot = kit.calls.snapshot()
    return sum(p["media"]["restarts"] or 0 for p in snapshot["participants"][1:] if p.get("media"))
