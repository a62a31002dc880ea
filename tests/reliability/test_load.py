"""500 concurrent two-party sessions of simulated clients (signaling only) against
``callbox server`` in its own process, on loopback: every signal reaches its partner, in
order, with nothing lost and nothing refused. The timing of the same load is measured in
``bench/server_load.py``; here only delivery is checked."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.server_load import Client, connect_pair, start_server

SESSIONS = 500
SIGNALS = 10  # per client, 10 000 in all
RATE = 5.0  # per client a second: an ICE trickle


@pytest.fixture
async def session_server() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = await start_server(Path(tmp), limits=None)  # as shipped
        try:
            yield url
        finally:
            process.terminate()
            await process.wait()


async def read_numbers(client: Client, got: list[int], other: list[str]) -> None:
    """Keeps the numbers of the signals from the partner; anything unexpected goes to
    ``other``."""
    async for frame in client.ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        message = json.loads(frame.data)
        kind = message.get("type")
        if kind == "signal" and message.get("from") == client.partner:
            got.append(int(message["candidate"]["candidate"].rsplit(" ", 1)[-1]))
        elif kind == "participant-joined" and message["participant"]["uid"] == client.partner:
            continue  # the first to join hears of the second
        else:
            other.append(frame.data)


async def send_numbers(client: Client) -> None:
    await asyncio.sleep((hash(client.uid) % 1000) / 1000 / RATE)  # spread the clients
    for number in range(SIGNALS):
        candidate = f"candidate:1 1 udp 2122260223 10.0.0.1 9 typ host seq {number}"
        await client.ws.send_json(
            {"type": "signal", "to": client.partner, "candidate": {"candidate": candidate}}
        )
        await asyncio.sleep(1 / RATE)


async def test_500_sessions_lose_no_message(session_server: str) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        gate = asyncio.Semaphore(100)  # sign-ins a hundred at a time: two cores, two processes

        async def pair(n: int) -> list[Client]:
            async with gate:
                return await connect_pair(http, session_server, n, "t")

        clients = [
            c for pair_of in await asyncio.gather(*map(pair, range(SESSIONS))) for c in pair_of
        ]
        assert len(clients) == 2 * SESSIONS
        received: dict[str, list[int]] = {c.uid: [] for c in clients}
        unexpected: list[str] = []
        readers = [
            asyncio.create_task(read_numbers(c, received[c.uid], unexpected)) for c in clients
        ]
        await asyncio.gather(*(send_numbers(c) for c in clients))
        try:
            async with asyncio.timeout(60):
                while any(len(numbers) < SIGNALS for numbers in received.values()):
                    await asyncio.sleep(0.1)
        finally:
            for client in clients:
                await client.ws.close()
            for task in readers:
                task.cancel()
    assert all(numbers == list(range(SIGNALS)) for numbers in received.values())
    assert sum(len(n) for n in received.values()) == 2 * SESSIONS * SIGNALS
    assert unexpected == []  # no error, no refusal, no one left
