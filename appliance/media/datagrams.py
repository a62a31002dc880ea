"""ICE sockets that read every datagram waiting, not one per pass of the event loop.

asyncio's datagram transport reads one datagram each time the event loop finds its socket
readable, so a socket can deliver no more datagrams a second than the loop makes passes.
One bundled connection carries a participant's audio and video (Opus alone is 50 packets
a second); a loop busy with decoding, mixing and compositing makes fewer passes than that.
The socket's queue in the kernel then grows by the difference until it is full (aioice
asks for 256 KiB, which Linux doubles: seconds of media). Everything on it arrives that
late, what does not fit is dropped, and the answers to ICE consent checks come too late
to count, so consent lapses and the connection closes. Five kits on Janus in one test
process: the loop made 45 passes a second, each subscription's socket delivered 45 of the
70 datagrams a second that came, and its queue grew by 25 to 30 kB a second (over 400 kB
within 20 s); Janus's answers to consent checks came 3 s late and more, or not at all.
Read all at once, each socket delivered its 70, its queue held one datagram or none, and
the answers came within 10 ms.

``read_all_waiting(pc)`` gives each of a connection's ICE sockets a read callback that
reads what is waiting, up to ``READS_PER_WAKEUP`` datagrams (libuv's limit per wake-up,
so that one flooded socket cannot hold the loop), each handed to the protocol in order
as asyncio's own callback would. Call it once the connection has gathered its candidates
(after ``setLocalDescription``); calling it again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]
from typing import Any

from aiortc import RTCPeerConnection

from appliance.media.consent import ice_connections

log = logging.getLogger(__name__)

READS_PER_WAKEUP = 32


class ReadAllWaiting:
    """The read callback of one asyncio datagram transport: up to ``READS_PER_WAKEUP``
    datagrams a call, stopping when the socket has no more."""

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def __call__(self) -> None:
        transport: Any = self._transport
        for _ in range(READS_PER_WAKEUP):
            if transport._conn_lost or transport._sock is None or transport.is_closing():
                return  # closed by what the protocol was handed
            protocol = transport.get_protocol()
            try:
                data, addr = transport._sock.recvfrom(transport.max_size)
            except (BlockingIOError, InterruptedError):
                return  # nothing more waiting
            except OSError as exc:
                protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                transport._fatal_error(exc, "Fatal read error on datagram transport")
                return
            protocol.datagram_received(data, addr)


def read_all_waiting(pc: RTCPeerConnection) -> None:
    """Every ICE socket ``pc`` has gathered reads all that waits each time it is ready."""
    for connection in ice_connections(pc):
        for protocol in connection._protocols:
            transport: Any = protocol.transport
            # A TURN relay's datagrams come through its client's socket to the server.
            relay = getattr(transport, "_TurnTransport__inner_protocol", None)
            drain(relay.transport if relay is not None else transport)


def drain(transport: asyncio.BaseTransport) -> bool:
    """Put ``ReadAllWaiting`` in place of asyncio's read callback on ``transport``; False,
    the transport left as it is, when it is not asyncio's selector datagram transport (a
    stream to a TURN server reads all that waits already; so does uvloop's)."""
    if not isinstance(transport, _SelectorDatagramTransport):
        log.debug("not asyncio's datagram transport (%r): left as it is", transport)
        return False
    current: Any = transport
    if isinstance(vars(current).get("_read_ready"), ReadAllWaiting):
        return True
    reader = ReadAllWaiting(transport)
    # resume_reading() registers whatever _read_ready is then: ours, from now on.
    current._read_ready = reader
    current._add_reader(current._sock_fd, reader)  # replaces asyncio's (not if closing)
    return True
