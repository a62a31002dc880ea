"""ICE sockets read every datagram waiting each time the event loop finds them readable
(appliance.media.datagrams), where asyncio's transport reads one a pass: a loop making
fewer passes a second than a connection has packets fell further behind every second.

The datagrams go over a Unix datagram socket pair, whose kernel has queued each one when
send() returns, so what one pass of the loop reads does not depend on timing. The
transport is asyncio's own, the kind aioice's UDP sockets have."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiortc import RTCPeerConnection

from appliance.media.consent import ice_connections
from appliance.media.datagrams import (
    READS_PER_WAKEUP,
    ReadAllWaiting,
    drain,
    read_all_waiting,
)


class Received(asyncio.DatagramProtocol):
    def __init__(self, close_after: int | None = None) -> None:
        self.datagrams: list[bytes] = []
        self.errors: list[Exception] = []
        self._close_after = close_after
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append(data)
        if len(self.datagrams) == self._close_after and self.transport is not None:
            self.transport.close()

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


@asynccontextmanager
async def endpoint(
    protocol: Received,
) -> AsyncIterator[tuple[asyncio.BaseTransport, socket.socket]]:
    """asyncio's datagram transport on one end of a socket pair; the other end to send."""
    ours, far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=ours)
    try:
        yield transport, far
    finally:
        transport.close()
        far.close()


async def one_pass() -> None:
    """Until the loop has made one pass past this one: the read callback of a socket it
    finds readable runs after this task in the same pass, so the task yields twice."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def send(far: socket.socket, count: int) -> list[bytes]:
    datagrams = [f"datagram {i}".encode() for i in range(count)]
    for datagram in datagrams:
        far.send(datagram)
    return datagrams


async def test_asyncio_alone_reads_one_datagram_a_pass() -> None:
    """The cause: ten waiting, one read. (Should asyncio ever read more, this fails, and
    appliance.media.datagrams may go.)"""
    protocol = Received()
    async with endpoint(protocol) as (_, far):
        sent = send(far, 10)
        await one_pass()
        assert protocol.datagrams == sent[:1]


async def test_a_drained_socket_reads_every_datagram_waiting_in_one_pass() -> None:
    protocol = Received()
    async with endpoint(protocol) as (transport, far):
        assert drain(transport)
        sent = send(far, 10)
        await one_pass()
        assert protocol.datagrams == sent


async def test_a_flooded_socket_lets_the_loop_go_on_after_its_share() -> None:
    protocol = Received()
    async with endpoint(protocol) as (transport, far):
        sent = send(far, READS_PER_WAKEUP + 8)
        read = ReadAllWaiting(transport)
        read()
        assert protocol.datagrams == sent[:READS_PER_WAKEUP]
        read()
        assert protocol.datagrams == sent
        read()  # nothing waiting: returns
        assert protocol.datagrams == sent


async def test_reading_stops_when_the_protocol_closes_the_transport() -> None:
    protocol = Received(close_after=3)
    async with endpoint(protocol) as (transport, far):
        drain(transport)
        sent = send(far, 10)
        await one_pass()
        assert protocol.datagrams == sent[:3]
        assert transport.is_closing()
        await one_pass()  # the closed transport is not read again, nor does it raise
        assert protocol.datagrams == sent[:3]


class FailingSocket:
    """recvfrom: a refusal (an ICMP error reported on the socket), then one datagram."""

    def __init__(self) -> None:
        self.results: list[Exception | tuple[bytes, Any]] = [
            ConnectionRefusedError(111, "refused"),
            (b"after", ("192.0.2.9", 5000)),
        ]

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.results:
            raise BlockingIOError
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


async def test_a_read_error_goes_to_the_protocol_as_asyncio_does_and_the_next_read_goes_on() -> (
    None
):
    protocol = Received()
    async with endpoint(protocol) as (transport, _):
        real: Any = transport
        sock, real._sock = real._sock, FailingSocket()  # asyncio's transport, a failing socket
        try:
            read = ReadAllWaiting(transport)
            read()
            assert [type(e) for e in protocol.errors] == [ConnectionRefusedError]
            assert protocol.datagrams == []
            read()
            assert protocol.datagrams == [b"after"]
        finally:
            real._sock = sock


async def test_every_ice_socket_of_a_connection_reads_all_waiting_once_gathered() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        read_all_waiting(pc)
        transports = [p.transport for c in ice_connections(pc) for p in c._protocols]
        assert transports
        readers = [vars(t).get("_read_ready") for t in transports]
        assert all(isinstance(r, ReadAllWaiting) for r in readers)
        read_all_waiting(pc)  # again: the same readers stay
        assert [vars(t).get("_read_ready") for t in transports] == readers
    finally:
        await pc.close()
