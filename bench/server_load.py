"""Session server load: N concurrent two-party sessions of simulated clients (signaling
only) against `callbox server` in its own process. Each client sends ICE-candidate-sized
signals to its partner; relay latency is send-to-receive on loopback. First N grows at a
call-like rate; then, at 500 sessions, the rate per client grows until p99 latency passes
20 ms or a message is lost: that is the knee."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Result, Target, median, percentile
from tests.kits import free_port

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
CALL_RATE = 2.0  # signals a second per client: a candidate trickle, state changes
SECONDS = 5.0
P99_LIMIT_MS = 20.0


@dataclass
class Client:
    uid: str
    partner: str
    ws: aiohttp.ClientWebSocketResponse
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    sent: int = 0


# The per-client limits are lifted: this measures the relay, not the rate limiter
# (tests/reliability/test_limits.py covers that), and 1000 sessions sign in at once.
LIFTED_LIMITS = {"messages_per_second": 10_000, "message_burst": 10_000, "unauthenticated": 10_000}


async def start_server(
    tmp: Path, limits: dict[str, int] | None = LIFTED_LIMITS
) -> tuple[asyncio.subprocess.Process, str]:
    """``callbox server`` on a free port; ``limits=None``: the default [server.limits]."""
    port = free_port()
    config = tmp / "server.toml"
    lines = ["[server.limits]", *(f"{k} = {v}" for k, v in (limits or {}).items())]
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_key = "{ADMIN_KEY}"\n'
        + "\n".join(lines)
        + f'\n[paths]\nstate = "{tmp}"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        "server",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/v1/health") as response:
                    if response.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("callbox server did not start")


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def connect_pair(http: aiohttp.ClientSession, url: str, n: int, tag: str) -> list[Client]:
    session_id = f"load-{tag}-{n}"
    uids = [f"u{tag}-{n}-a", f"u{tag}-{n}-b"]
    clients = []
    for uid, partner in ((uids[0], uids[1]), (uids[1], uids[0])):
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with http.post(
            f"{url}/v1/users", json={"uid": uid, "name": uid}, headers=headers
        ) as r:
            token = (await r.json())["auth_token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(
            f"{url}/v1/tokens", json={"session_id": session_id}, headers=auth
        ) as r:
            call_token = (await r.json())["token"]
        ws = await http.ws_connect(f"{url}/v1/ws", max_msg_size=0)
        await ws.send_json({"type": "hello", "auth_token": token, "id": 1})
        await ws.receive_json()
        await ws.send_json(
            {"type": "join", "session_id": session_id, "call_token": call_token, "id": 2}
        )
        while (await ws.receive_json()).get("id") != 2:
            pass
        clients.append(Client(uid, partner, ws))
    return clients


async def reader(client: Client) -> None:
    async for message in client.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        data = json.loads(message.data)
        if data.get("type") == "signal":
            sent_at = float(data["candidate"]["candidate"].split()[-1])
            client.latencies.append(time.perf_counter() - sent_at)
            client.received += 1


async def sender(client: Client, stop_at: float, rate: float) -> None:
    loop = asyncio.get_running_loop()
    period = 1 / rate
    await asyncio.sleep(period * (hash(client.uid) % 1000) / 1000)  # spread the clients
    next_at = loop.time()
    while loop.time() < stop_at:
        candidate = (
            "candidate:842163049 1 udp 1677729535 192.168.1.23 51234 typ srflx "
            "raddr 10.0.0.2 rport 51234 generation 0 ufrag x7Yc network-cost 999 "
            f"{time.perf_counter()}"
        )
        signal = {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}
        await client.ws.send_json({"type": "signal", "to": client.partner, "candidate": signal})
        client.sent += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def connect(
    http: aiohttp.ClientSession, url: str, sessions: int, tag: str
) -> tuple[list[Client], list[asyncio.Task[None]]]:
    pairs = await asyncio.gather(*(connect_pair(http, url, i, tag) for i in range(sessions)))
    clients = [c for pair in pairs for c in pair]
    return clients, [asyncio.create_task(reader(c)) for c in clients]


async def measure(clients: list[Client], pid: int, rate: float) -> dict[str, float]:
    for c in clients:
        c.latencies.clear()
        c.sent = c.received = 0
    loop = asyncio.get_running_loop()
    cpu0, wall0 = server_cpu(pid), time.perf_counter()
    await asyncio.gather(*(sender(c, loop.time() + SECONDS, rate) for c in clients))
    await asyncio.sleep(0.5)  # let the last messages land
    server_share = (server_cpu(pid) - cpu0) / (time.perf_counter() - wall0)
    latencies = [x * 1000 for c in clients for x in c.latencies]
    sent, received = sum(c.sent for c in clients), sum(c.received for c in clients)
    return {
        "sessions": len(clients) // 2,
        "rate_per_client": rate,
        "relayed_per_s": received / SECONDS,
        "p50": median(latencies),
        "p99": percentile(latencies, 99),
        "lost": sent - received,
        "server_cpu": server_share,
    }


async def disconnect(clients: list[Client], readers: list[asyncio.Task[None]]) -> None:
    for c in clients:
        await c.ws.close()
    for task in readers:
        task.cancel()


def within(s: dict[str, float]) -> bool:
    return s["p99"] <= P99_LIMIT_MS and s["lost"] == 0


async def run(quick: bool) -> Result:
    session_steps = [5, 20] if quick else [100, 250, 500, 750, 1000]
    rate_steps = [4.0] if quick else [5.0, 10.0, 20.0, 40.0, 80.0]
    rate_sessions = 20 if quick else 500
    stats: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = await start_server(Path(tmp))
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                for n, sessions in enumerate(session_steps):
                    clients, readers = await connect(http, url, sessions, f"n{n}")
                    stats.append(await measure(clients, proc.pid, CALL_RATE))
                    await disconnect(clients, readers)
                clients, readers = await connect(http, url, rate_sessions, "rate")
                for rate in rate_steps:
                    stats.append(await measure(clients, proc.pid, rate))
                    if stats[-1]["p99"] > 4 * P99_LIMIT_MS:  # far past the knee: stop
                        break
                await disconnect(clients, readers)
        finally:
            proc.terminate()
            await proc.wait()
    at_500 = next((s for s in stats if s["sessions"] == 500), None)
    held = [s for s in stats if s["sessions"] == rate_sessions and within(s)]
    knee_rate = max((s["relayed_per_s"] for s in held), default=0.0)
    targets = []
    if at_500 is not None:
        targets.append(
            Target(
                "500 concurrent two-party sessions, p99 relay under 20 ms, nothing lost",
                f"p99 {at_500['p99']:.1f} ms, lost {at_500['lost']:.0f}",
                within(at_500),
            )
        )
    return Result(
        "server_load",
        "Session server load: signaling relay between simulated two-party sessions",
        figures={"knee_messages_per_s": knee_rate, "stages": stats},
        columns=[
            "sessions",
            "signals/s per client",
            "relayed msgs/s",
            "p50 ms",
            "p99 ms",
            "lost",
            "server CPU (cores)",
        ],
        rows=[
            [
                s["sessions"],
                s["rate_per_client"],
                s["relayed_per_s"],
                s["p50"],
                s["p99"],
                s["lost"],
                s["server_cpu"],
            ]
            for s in stats
        ],
        targets=targets,
        notes=[
            f"knee: at {rate_sessions} sessions the server held {knee_rate:.0f} relayed "
            f"messages/s with p99 <= {P99_LIMIT_MS:g} ms and nothing lost",
            "clients run in the benchmark process, the server in its own (`callbox server`); "
            "past the knee the clients' own process may be the bottleneck (see server CPU)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
