"""Consent freshness (RFC 7675) that a slow link or a busy CPU does not break.

Once ICE is up, each side checks every five seconds or so that the other still wants its
media, and stops sending when consent lapses. aioice sends each check once and gives it
0.5 s: six late answers in a row (a Wi-Fi link with a deep queue, a far kit whose CPU is
busy for a moment) close a connection that is carrying media, and the call restarts. RFC
7675 (section 5.1) lets a check be retransmitted, with a timeout of at least 500 ms or twice
the round trip, and consent lapses only after 30 s with no answer at all. Here each check
is retransmitted (answered up to 3.5 s late, it counts), and the connection closes 30 s
after the last answer. A path that is really gone is noticed sooner by the call itself
(nothing received for a few seconds), which replaces the connection.

aioice starts the checks at the end of ``Connection.connect()`` from its
``query_consent`` method, which :func:`keep_consent_patiently` replaces on each of a peer
connection's ICE connections before they connect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aioice import stun
from aioice.ice import Connection
from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

CHECK_INTERVAL = 5.0  # seconds between checks, each 0.8 to 1.2 times this (RFC 7675)
CHECK_RETRANSMISSIONS = 2  # sent at 0, 0.5 and 1.5 s; given up at 3.5 s
CONSENT_LIFETIME = 30.0  # seconds without any answer before consent lapses (RFC 7675)

_PATIENT = "_callbox_patient_consent"


def keep_consent_patiently(pc: RTCPeerConnection, **options: Any) -> None:
    """Give each ICE connection of ``pc`` our consent checks in aioice's place. Call it
    once the descriptions are set (the transceivers and their ICE exist) and before the
    connection is up; calling it again changes nothing. ``options`` go to
    :func:`query_consent` (a test's clock)."""
    for connection in ice_connections(pc):
        if getattr(connection, _PATIENT, False):
            continue
        if not callable(getattr(connection, "query_consent", None)):
            log.warning("aioice's connection has no consent checks where expected: left as is")
            continue
        # An instance attribute, found before the class's method when connect() starts it.
        vars(connection)["query_consent"] = functools.partial(query_consent, connection, **options)
        setattr(connection, _PATIENT, True)


def ice_connections(pc: RTCPeerConnection) -> Iterator[Connection]:
    """The aioice connections under ``pc``'s transports, each once."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    seen: set[int] = set()
    for dtls in transports:
        connection = getattr(getattr(dtls.transport, "iceGatherer", None), "_connection", None)
        if isinstance(connection, Connection) and id(connection) not in seen:
            seen.add(id(connection))
            yield connection


async def query_consent(
    connection: Connection,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    retransmissions: int = CHECK_RETRANSMISSIONS,
) -> None:
    """Check consent on ``connection``'s nominated pairs until it lapses, then close it.
    ``clock`` and ``sleep`` are the event loop's unless a test sets them."""
    now = clock or asyncio.get_running_loop().time
    assert connection.remote_password is not None  # connect() set it before starting us
    key = connection.remote_password.encode("utf8")
    last_answer = now()
    while True:
        await sleep(CHECK_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in list(connection._nominated.values()):
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request, pair.remote_addr, integrity_key=key, retransmissions=retransmissions
                )
            except stun.TransactionError:
                continue
            last_answer = now()
        if now() - last_answer >= CONSENT_LIFETIME:
            log.info("consent to send lapsed: no answer for %.0f s", now() - last_answer)
            # close() cancels and awaits the consent task it knows of: this one.
            connection._query_consent_task = None
            await connection.close()
            return
