"""Button to far end: a press of the mute button on the mock pins until the far kit's
on_user_muted, through the daemon's KitController, the signaling server and back."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from appliance.events import UserMuted
from bench.common import Result, Target, median, percentile
from tests.kits import KitFactory, running_server


async def run(quick: bool) -> Result:
    presses = 10 if quick else 200
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                a = await kits("room-a", controller=True)
                b = await kits("room-b")
                await a.join("latency")
                await b.join("latency")
                await b.wait_to_hear(a.tone_hz)
                loop = asyncio.get_running_loop()
                with b.calls.events.subscribe() as events:
                    for n in range(presses):
                        muted_now = n % 2 == 0
                        pressed: float = 0.0
                        seen: asyncio.Future[float] = loop.create_future()

                        async def watch(want: bool, fut: asyncio.Future[float]) -> None:
                            while True:
                                match (await events.get()).event:
                                    case UserMuted(change=change) if change.is_muted is want:
                                        fut.set_result(time.perf_counter())
                                        return

                        watcher = asyncio.create_task(watch(muted_now, seen))
                        pressed = time.perf_counter()
                        # The mock pin is driven from another thread, as a real GPIO edge is.
                        await asyncio.to_thread(a.buttons.press, "mute")
                        latencies.append(await asyncio.wait_for(seen, 5) - pressed)
                        await watcher
                        await asyncio.sleep(0.02)
            finally:
                await kits.close()
    ms = [x * 1000 for x in latencies]
    med, p99 = median(ms), percentile(ms, 99)
    return Result(
        "button_latency",
        "Button to far end: mute press on the mock pins until the far kit's on_user_muted",
        figures={"median_ms": med, "p99_ms": p99, "presses": presses},
        columns=["presses", "median ms", "p90 ms", "p99 ms", "max ms"],
        rows=[[presses, med, percentile(ms, 90), p99, max(ms)]],
        targets=[Target("median under 20 ms on loopback", f"{med:.1f} ms", med < 20)],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
