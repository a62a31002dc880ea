"""Start-up and memory: ``callbox run`` on fake hardware from exec to READY (the sd_notify
message systemd waits for), its resident memory idle, and each kit's in a three-kit call.

The kits are real processes (``python -m appliance run``), so the figures include the
interpreter, every import and the embedded session server of the kit that hosts it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from appliance.config import to_toml
from appliance.signaling.client import ServerApi
from bench.common import Result, Target, median
from tests.kits import free_port
from tests.reliability.network.processes import Process, wait_until_answers

API_TOKEN = "bench-api-token-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"
READY_TIMEOUT = 60.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class KitRun:
    """``callbox run`` with a config of its own, its sd_notify socket held by us."""

    def __init__(self, where: Path, uid: str, tone_hz: float, server: dict[str, Any]) -> None:
        self.uid = uid
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}/api/v1"
        config = {
            "kit": {"uid": uid, "name": uid.replace("-", " ").title()},
            "server": server,
            "api": {"listen": f"127.0.0.1:{self.api_port}", "token": API_TOKEN},
            "hal": {"backend": "fake", "audio": {"fake_tone_hz": tone_hz}},
            "paths": {"state": str(where / uid)},
        }
        (where / uid).mkdir(parents=True, exist_ok=True)
        self.config = where / uid / "kit.toml"
        self.config.write_text(to_toml(config))
        self.notify_path = where / uid / "notify.sock"
        argv = [sys.executable, "-m", "appliance", "run", "--config", str(self.config)]
        self.process = Process(uid, argv, where / uid / "kit.log")

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    async def start(self) -> float:
        """Seconds from exec to READY=1."""
        self.notify_path.unlink(missing_ok=True)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(self.notify_path))
        notify.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            started = time.perf_counter()
            await self.process.start(env={"NOTIFY_SOCKET": str(self.notify_path)})
            deadline = started + READY_TIMEOUT
            while time.perf_counter() < deadline:
                if not self.process.running:
                    raise RuntimeError(f"{self.uid} exited:\n{self.process.tail()}")
                try:  # wake now and then to notice a kit that died before READY
                    message = await asyncio.wait_for(loop.sock_recv(notify, 4096), 0.5)
                except TimeoutError:
                    continue
                if b"READY=1" in message.split(b"\n"):
                    return time.perf_counter() - started
            raise RuntimeError(f"{self.uid}: no READY in {READY_TIMEOUT:g} s")
        finally:
            notify.close()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.request(method, self.api + path, json=body) as response,
        ):
            data = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"{self.uid}: {method} {path}: {response.status} {data}")
            return data

    async def frames_decoded(self) -> dict[str, int]:
        """Video frames decoded so far, per other participant."""
        participants = (await self.request("GET", "/session"))["participants"]
        return {p["uid"]: int(p["media"]["video_frames"]) for p in participants if p.get("media")}


async def ready_and_idle(where: Path, runs: int, settle: float) -> tuple[list[float], list[float]]:
    """Start a lone kit (hosting its session server) ``runs`` times: READY seconds and the
    RSS once it has sat idle for ``settle`` seconds."""
    ready, idle = [], []
    for run in range(runs):
        server_port = free_port()
        server = {
            "listen": f"127.0.0.1:{server_port}",
            "url": f"http://127.0.0.1:{server_port}",
            "admin_key": ADMIN_KEY,
        }
        kit = KitRun(where / f"idle-{run}", "room-a", 400, server)
        try:
            ready.append(await kit.start())
            await asyncio.sleep(settle)
            idle.append(rss_mib(kit.pid))
        finally:
            await kit.process.stop()
    return ready, idle


async def three_kit_call(where: Path, seconds: float) -> dict[str, float]:
    """RSS of each kit ``seconds`` into a call of three, video flowing every way."""
    server_port = free_port()
    url = f"http://127.0.0.1:{server_port}"
    host = KitRun(
        where,
        "room-a",
        400,
        {"listen": f"127.0.0.1:{server_port}", "url": url, "admin_key": ADMIN_KEY},
    )
    kits = [host]
    try:
        await host.start()
        api = ServerApi(url)
        try:
            tokens = {uid: await api.add_user(ADMIN_KEY, uid, uid) for uid in ("room-b", "room-c")}
        finally:
            await api.close()
        for uid, tone in (("room-b", 650.0), ("room-c", 820.0)):
            guest = KitRun(
                where, uid, tone, {"embedded": False, "url": url, "auth_token": tokens[uid]}
            )
            kits.append(guest)
            await guest.start()
        for kit in kits:
            await wait_until_answers(kit.api + "/health", kit.process)
            await kit.request("PUT", "/session", {"session_id": "memory"})
        async with asyncio.timeout(60):
            while True:
                seen = {kit.uid: await kit.frames_decoded() for kit in kits}
                counts = [seen[k.uid].get(o.uid, 0) for k in kits for o in kits if o is not k]
                if min(counts) >= 10:
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(seconds)
        return {kit.uid: rss_mib(kit.pid) for kit in kits}
    finally:
        for kit in reversed(kits):
            await kit.process.stop()


IDLE_TARGET_MIB = 100.0
# What an idle kit's process holds before it does anything: the interpreter and the modules
# `callbox run` imports. Each line: a fresh interpreter, RSS before and after the import.
IMPORTS = ["numpy", "av", "aiohttp", "pydantic", "jwt", "appliance.cli, appliance.daemon"]


async def import_rss_mib(modules: str) -> tuple[float, float]:
    """(RSS of a bare interpreter, RSS after importing ``modules``) in a fresh process."""
    code = (
        "import re\n"
        "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status')"
        ".read())[1]) / 1024\n"
        f"before = rss()\nimport {modules}\nprint(before, rss())"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    before, after = out.split()
    return float(before), float(after)


async def run(quick: bool) -> Result:
    # Idle 10 s: a kit trims its heap 5 s after its boot self-test (appliance.memory).
    runs, settle, in_call = (1, 1.0, 2.0) if quick else (3, 10.0, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        ready, idle = await ready_and_idle(Path(tmp), runs, settle)
        call = await three_kit_call(Path(tmp) / "call", in_call)
    ready_median, idle_median = median(ready), median(idle)
    imports = {modules: await import_rss_mib(modules) for modules in IMPORTS}
    bare, loaded = imports[IMPORTS[-1]]
    host_rss, guest_rss = call["room-a"], max(call["room-b"], call["room-c"])
    rows: list[list[Any]] = [
        ["exec to READY (s)", ready_median, min(ready), max(ready)],
        ["idle RSS (MiB)", idle_median, min(idle), max(idle)],
        ["of which the interpreter (MiB)", bare, "-", "-"],
        ["of which the modules `callbox run` imports (MiB)", loaded - bare, "-", "-"],
        ["of which what the idle kit builds at run time (MiB)", idle_median - loaded, "-", "-"],
        ["RSS in a 3-kit call, kit hosting the server (MiB)", host_rss, "-", "-"],
        [
            "RSS in a 3-kit call, other kits (MiB)",
            guest_rss,
            min(call["room-b"], call["room-c"]),
            guest_rss,
        ],
    ]
    return Result(
        "startup_memory",
        "Start-up and memory: `callbox run` on fake hardware",
        figures={"ready_s": ready, "idle_rss_mib": idle, "call_rss_mib": call},
        columns=["measure", "median", "min", "max"],
        rows=rows,
        targets=[
            Target("READY under 1.5 s", f"{ready_median:.2f} s", ready_median < 1.5),
            Target(
                f"idle RSS at most {IDLE_TARGET_MIB:g} MiB"
                + (
                    ""
                    if idle_median <= IDLE_TARGET_MIB
                    else f"; {idle_median - IDLE_TARGET_MIB:.0f} MiB over, held by the imports "
                    f"({loaded - bare:.0f} MiB) and the run-time state "
                    f"({idle_median - loaded:.0f} MiB)"
                ),
                f"{idle_median:.0f} MiB",
                idle_median <= IDLE_TARGET_MIB,
            ),
        ],
        notes=[
            "`python -m bench startup_memory`",
            f"{runs} cold starts of a kit hosting its session server, each idle for {settle:g} s "
            "before its RSS is read (its heap trimmed 5 s after its boot self-test, "
            f"`appliance/memory.py`); the call's RSS after {in_call:g} s of 3-way video at the "
            f"default camera and screen sizes; {os.cpu_count()} cores shared by all three kits",
            "imports, each alone in a fresh interpreter (MiB added): "
            + ", ".join(f"{m} {after - before:.0f}" for m, (before, after) in imports.items())
            + "; aiortc and the media stack load with the first call, not at start-up",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
