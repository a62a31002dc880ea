"""Big rooms: CPU per kit for 2, 4 and 8 kits in one session, peer to peer (mesh) against a
Janus VideoRoom, side by side in one run.

All kits run in this process on fake hardware (320x240 at 15 fps, as the tests do), so the
figure per kit is this process's CPU time over the measurement, divided by the kits: in a
mesh each kit encodes its camera once per peer and decodes every peer; on Janus it encodes
once and decodes every peer. Janus's own CPU (its process) is listed beside it.

On a machine with few cores the biggest rooms saturate it (all kits share this process's
event loop): the frames decoded per second per stream then fall below the cameras' rate, and
CPU per kit stops telling the cost. So the cost is also given per frame delivered: CPU per
kit over the frames it decodes per second, in milliseconds, which stays comparable."""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.common import Result, Target, cpu_and_wall
from tests.janus.server import JanusProcess, missing_reason, running_janus
from tests.kits import SMALL_VIDEO, Kit, KitFactory, running_server

WARMUP = 2.0
CONNECT_TIMEOUT = 90.0
CLOCK_TICKS = 100  # USER_HZ: /proc/<pid>/stat counts in these


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Janus)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def everyone_sees_everyone(room: list[Kit]) -> bool:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            for kit in room:
                for other in room:
                    if other is not kit:
                        await kit.wait_for_video_from(other.uid, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        return False
    return True


def restarts(room: list[Kit]) -> int:
    """ICE restarts so far across the room (a mesh kit's connections; none on Janus)."""
    return sum(
        stats["restarts"] or 0
        for kit in room
        if kit.calls.session
        for stats in kit.calls.session.media_stats().values()
    )


def decoded(room: list[Kit]) -> int:
    return sum(
        n
        for kit in room
        if kit.calls.session
        for n in kit.calls.session.remote_video.frames.values()
    )


async def one_room(
    media: str, kits: int, seconds: float, tmp: Path, janus: JanusProcess | None
) -> dict[str, Any]:
    config: dict[str, Any] = {"media": media}
    if janus is not None:
        config["janus"] = [janus.config()]
    async with running_server(tmp, **config) as server:
        factory = KitFactory(server, tmp)
        try:
            room = [await factory(f"kit-{i}", video_format=SMALL_VIDEO) for i in range(kits)]
            for kit in room:
                await kit.join(f"{media}-{kits}")
            connected = await everyone_sees_everyone(room)
            await asyncio.sleep(WARMUP)
            frames_before = decoded(room)
            janus_before = process_cpu(janus.process.pid) if janus and janus.process else 0.0
            with cpu_and_wall() as used:
                await asyncio.sleep(seconds)
            janus_used = (
                process_cpu(janus.process.pid) - janus_before if janus and janus.process else 0.0
            )
            frames = decoded(room) - frames_before
            restarted = restarts(room)
        finally:
            await factory.close()
    streams = kits * (kits - 1)
    cpu_per_kit = used["cpu"] / used["wall"] / kits
    fps_per_stream = frames / used["wall"] / streams
    return {
        "cpu_per_kit": cpu_per_kit,
        "janus_cpu": janus_used / used["wall"],
        "fps_per_stream": fps_per_stream,
        # CPU seconds a kit spends per frame it receives, in ms (encoding included).
        "ms_per_frame": 1000 * cpu_per_kit / max(fps_per_stream * (kits - 1), 1e-9),
        "connected": connected,
        "restarts": restarted,
    }


async def run(quick: bool) -> Result:
    sizes = [2] if quick else [2, 4, 8]
    seconds = 2.0 if quick else 4.0
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {}
    notes = [
        f"{SMALL_VIDEO.width}x{SMALL_VIDEO.height} at {SMALL_VIDEO.fps} fps per camera, "
        f"measured over {seconds:g} s after {WARMUP:g} s of warm-up; CPU in cores "
        "(CPU seconds per second)",
        "python -m bench janus_cpu",
        "every kit runs in this one process on this machine's cores: 8 kits in a mesh are 56 "
        "encoders and 56 decoders, more than the cores carry, so streams fall behind, some "
        "connections go silent for the 4 s that counts as interrupted and are restarted "
        "(ICE restarts, from joining to the end of the measurement)",
    ]
    absent = missing_reason()
    if absent is not None:
        notes.append(f"Janus rows skipped: {absent}")
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncExitStack() as stack:
            janus = (
                await stack.enter_async_context(running_janus(Path(tmp) / "janus"))
                if absent is None
                else None
            )
            for kits in sizes:
                for media in ("mesh", "janus"):
                    if media == "janus" and janus is None:
                        continue
                    where = Path(tmp) / f"{media}-{kits}"
                    measured = await one_room(
                        media, kits, seconds, where, janus if media == "janus" else None
                    )
                    figures[f"{media}-{kits}"] = measured
                    rows.append(
                        [
                            kits,
                            media,
                            measured["cpu_per_kit"],
                            measured["janus_cpu"] if media == "janus" else "-",
                            measured["fps_per_stream"],
                            measured["ms_per_frame"],
                            "yes" if measured["connected"] else "**no**",
                            measured["restarts"] if media == "mesh" else "-",
                        ]
                    )
    targets = []
    for kits in sizes:
        mesh, on_janus = figures.get(f"mesh-{kits}"), figures.get(f"janus-{kits}")
        if kits > 2 and mesh and on_janus:
            ratio = on_janus["ms_per_frame"] / mesh["ms_per_frame"]
            targets.append(
                Target(
                    f"{kits} kits: a kit on Janus spends less CPU per frame received than in "
                    "a mesh",
                    f"{ratio:.2f} x",
                    ratio < 1.0,
                )
            )
    return Result(
        "janus_cpu",
        "Big rooms: CPU per kit, mesh against Janus",
        figures=figures,
        columns=[
            "kits",
            "media",
            "CPU per kit (cores)",
            "Janus CPU (cores)",
            "frames/s per stream decoded",
            "kit CPU ms per frame received",
            "all connected",
            "ICE restarts",
        ],
        rows=rows,
        targets=targets,
        notes=notes,
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
