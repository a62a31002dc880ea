"""What one client may ask of the session server, so that no client can crowd out another.

Every inbound signaling frame spends a token from its connection's bucket (refilled at
``messages_per_second``, holding at most ``message_burst``). A frame with no token left is
not acted on: only its ``id`` is read, for the ``error`` (code ``rate-limited``) that
answers it. Each refusal spends a strike from a second, slower bucket (``STRIKES``, refilled
at ``STRIKES_PER_SECOND``), and a connection out of strikes is closed (1008): a kit that
trickles a burst of ICE candidates never comes near either, a flood ends within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from appliance.config import ServerLimits

Clock = Callable[[], float]

# A refused frame costs a strike; strikes come back this fast and this many are held.
STRIKES_PER_SECOND = 5.0
STRIKES = 50


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; starts full."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimit:
    """One connection's budget: ``admit()`` says whether a frame may be served, and
    ``abusive`` whether the connection has run out of strikes and must be closed."""

    def __init__(self, limits: ServerLimits, clock: Clock = time.monotonic) -> None:
        self._messages = TokenBucket(limits.messages_per_second, limits.message_burst, clock)
        self._strikes = TokenBucket(STRIKES_PER_SECOND, STRIKES, clock)
        self.refused = 0
        self.abusive = False

    def admit(self) -> bool:
        if self._messages.take():
            return True
        self.refused += 1
        if not self._strikes.take():
            self.abusive = True
        return False


KNOWN_ADDRESSES = 4096  # addresses remembered as having signed in (most recent kept)


class SignInSlots:
    """The sockets that have not said hello yet (``unauthenticated`` of them at most): at
    most ``unauthenticated_per_address`` from one address, and the last
    ``unauthenticated_reserved`` free slots only for addresses that signed in before (kits
    reconnecting) or are exempt, so one host, or a few, cannot keep the kits out."""

    def __init__(self, limits: ServerLimits) -> None:
        self._limits = limits
        self._exempt = frozenset(limits.exempt_addresses)
        self._open: dict[str, int] = {}
        self._known: dict[str, None] = {}  # insertion order: least recent first
        self.total = 0

    def take(self, address: str) -> str | None:
        """Takes a slot for a socket from ``address``; or says why there is none."""
        limits = self._limits
        trusted = address in self._exempt or address in self._known
        if address not in self._exempt and (
            self._open.get(address, 0) >= limits.unauthenticated_per_address
        ):
            return "too many connections from your address are signing in"
        free = limits.unauthenticated - self.total
        reserved = min(limits.unauthenticated_reserved, limits.unauthenticated // 2)
        if free <= 0 or (free <= reserved and not trusted):
            return "too many connections are signing in; try again shortly"
        self._open[address] = self._open.get(address, 0) + 1
        self.total += 1
        return None

    def give_back(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
        self.total -= 1

    def signed_in(self, address: str) -> None:
        self._known.pop(address, None)
        self._known[address] = None
        while len(self._known) > KNOWN_ADDRESSES:
            del self._known[next(iter(self._known))]
