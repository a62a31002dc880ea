"""Network impairment at a kit's datagram transport, for kernels without ``netem``.

Every datagram aioice sends (ICE checks, DTLS, SRTP: all of a kit's media) goes through the
``sendto`` of its socket's transport. Wrapping that ``sendto`` drops a fraction of the
datagrams and delays the rest by ``delay_ms`` +- ``jitter_ms`` (uniformly, so packets
reorder as netem's ``delay 100ms 100ms`` makes them), which is what netem does on a kit's
egress. Applied at both kits, each direction of the call is impaired once.

Two ways in: ``impair_connection(pc, ...)`` wraps the sockets of one peer connection in
this process (a test with in-process kits); ``install_from_file(path)`` wraps every socket
aioice opens in this process, following settings a test writes as JSON to ``path`` (a kit
in its own process, started through ``tests.reliability.network.impaired_kit``). Nothing
here is imported by the product.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aioice.ice import StunProtocol

ENVIRONMENT = "CALLBOX_TEST_IMPAIRMENT"  # the settings file of a kit in its own process
RECHECK_SECONDS = 0.2


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.0  # fraction of datagrams dropped
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    cut: bool = False  # drop everything

    def __post_init__(self) -> None:
        if not 0 <= self.loss <= 1:
            raise ValueError(f"loss: expected a fraction 0..1, got {self.loss}")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms, jitter_ms: expected >= 0")

    def write(self, path: Path) -> None:
        """For a kit in another process: atomically, so it never reads half a file."""
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)


Settings = Callable[[], Impairment]
SendTo = Callable[..., None]


def impaired(sendto: SendTo, settings: Settings, rng: random.Random) -> SendTo:
    """``sendto`` with ``settings()`` applied to each datagram."""

    def send(data: Any, addr: Any = None) -> None:
        now = settings()
        if now.cut or (now.loss and rng.random() < now.loss):
            return
        delay = now.delay_ms + rng.uniform(-now.jitter_ms, now.jitter_ms)
        if delay <= 0:
            sendto(data, addr)
            return
        asyncio.get_running_loop().call_later(delay / 1000, _send_late, sendto, data, addr)

    return send


def _send_late(sendto: SendTo, data: Any, addr: Any) -> None:
    with contextlib.suppress(OSError, RuntimeError, AttributeError):  # closed meanwhile
        sendto(data, addr)


def impair_connection(pc: Any, settings: Settings, seed: int = 0) -> int:
    """Wraps the sockets of an aiortc RTCPeerConnection's ICE transports (in this process);
    returns how many. A connection made later (an ICE restart) is not impaired."""
    rng = random.Random(seed)
    wrapped = 0
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        for protocol in dtls.transport._connection._protocols:
            if not getattr(protocol.transport, "_callbox_impaired", False):
                protocol.transport.sendto = impaired(protocol.transport.sendto, settings, rng)
                protocol.transport._callbox_impaired = True
                wrapped += 1
    return wrapped


class FileSettings:
    """Impairment read from a JSON file, re-read when it changes (at most every 0.2 s)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._current = Impairment()
        self._mtime: int | None = None
        self._checked = float("-inf")

    def __call__(self) -> Impairment:
        now = asyncio.get_running_loop().time()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            try:
                mtime = self._path.stat().st_mtime_ns
                if mtime != self._mtime:
                    self._current = Impairment(**json.loads(self._path.read_text()))
                    self._mtime = mtime
            except FileNotFoundError:
                self._current, self._mtime = Impairment(), None
        return self._current


def install_from_file(path: Path) -> None:
    """Every socket aioice opens from now on in this process follows ``path``."""
    settings = FileSettings(path)
    rng = random.Random()
    made = StunProtocol.connection_made

    def connection_made(self: StunProtocol, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        self.transport.sendto = impaired(self.transport.sendto, settings, rng)  # type: ignore[method-assign]

    StunProtocol.connection_made = connection_made  # type: ignore[method-assign]
