"""A client that does not read is cut off once 1024 messages wait for it, however small
they are (``test_limits`` covers the 4 MiB bound with large ones)."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest

from appliance.server.connection import MAX_OUTBOX, MAX_OUTBOX_BYTES
from tests.reliability.clients import pair_in_session, sign_in
from tests.server.conftest import ServerFactory


async def test_a_client_that_does_not_read_small_messages_is_cut_off_at_1024(
    make_server: ServerFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(limits={"messages_per_second": 100_000, "message_burst": 100_000})
    sender, listener = await pair_in_session(server, http, "small", ("talker", "listener"))
    await listener.close()
    token = await server.create_user("deaf", "Deaf")
    deaf = await sign_in(http, server.url, "deaf", token, read=False)
    await deaf.send(
        {
            "type": "join",
            "session_id": "small",
            "call_token": server.tokens.issue("deaf", "small").token,
        }
    )
    async with asyncio.timeout(10):
        while len(server.rooms.participants("small") or ()) < 2:
            await asyncio.sleep(0.01)
    # 2 KB each: 1024 of them are half the byte bound, so the count is what trips.
    offer = {"type": "offer", "sdp": "v" * 2000}
    assert MAX_OUTBOX_BYTES > 1024 * 2100
    caplog.set_level(logging.WARNING, logger="appliance.server.connection")
    sent = 0

    def cut_off() -> list[str]:
        return [r.getMessage() for r in caplog.records if "is not reading" in r.getMessage()]

    async with asyncio.timeout(60):
        while not cut_off() and sent < 20_000:
            for _ in range(100):
                await sender.send({"type": "signal", "to": "deaf", "description": offer})
            sent += 100
            await asyncio.sleep(0.02)  # let the server relay them and its writer block
        while not cut_off():  # what it still has to relay
            await asyncio.sleep(0.02)
    (cut,) = cut_off()
    queued = re.search(r"\((\d+) queued, (\d+) bytes\)", cut)
    assert queued is not None, cut
    assert int(queued[1]) == MAX_OUTBOX == 1024
    assert int(queued[2]) < MAX_OUTBOX_BYTES
    deaf.start_reading()  # what it finds: what fitted in the socket, then the close
    await asyncio.wait_for(deaf.closed.wait(), 20)
    assert deaf.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert 0 < len(deaf.received("signal")) < sent
    async with asyncio.timeout(10):
        while server.connections.of("deaf"):
            await asyncio.sleep(0.02)
    await sender.send({"type": "ping", "id": 7})
    assert (await sender.reply(7))["type"] == "pong"
