"""Our place in the session on the server: the join, the rejoin after the signaling
connection came back (with a fresh call token if ours expired meanwhile), the leave; and
the teardown that releases what a call held, step by step."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from appliance.signaling.client import SignalingClient, SignalingError
from appliance.signaling.messages import (
    Join,
    Joined,
    Leave,
    ParticipantState,
    StatePatch,
    UpdateState,
)
from appliance.signaling.tokens import CallToken

log = logging.getLogger(__name__)

LEAVE_TIMEOUT = 2.0

RenewToken = Callable[[], Awaitable[CallToken]]
# What a teardown releases, for the log, and how.
ReleaseStep = tuple[str, Callable[[], Awaitable[Any]]]


class ServerSeat:
    def __init__(
        self,
        client: SignalingClient,
        token: CallToken,
        *,
        renew_token: RenewToken | None,
        warn: Callable[[str, str, str], None],
    ) -> None:
        self._client = client
        self._session_id = token.session_id  # a renewed token is for the same session
        self.token = token
        self._renew_token = renew_token  # a fresh call token, when ours expired
        self._warn = warn
        self.seated = True  # our membership is live on the server: signals go through

    def can_signal(self) -> bool:
        return self.seated and self._client.connected

    async def join(self, state: ParticipantState) -> Joined:
        """Raises SignalingError for a refusal, ConnectionError or TimeoutError when the
        server cannot be reached."""
        reply = await self._client.request(self._join_message(state))
        assert isinstance(reply, Joined)
        return reply

    async def rejoin(self, state: ParticipantState) -> Joined:
        join = self._join_message(state)
        try:
            reply = await self._client.request(join)
        except SignalingError as err:
            if err.code != "token-expired" or self._renew_token is None:
                raise
            # Our token expired while the server was away: the kit is still in this call,
            # so it asks for a fresh one with its own auth token. The server never takes
            # the expired one; a session that ended meanwhile refuses old tokens anyway.
            self._warn(
                "token-expired", "server", "the call token expired; rejoining with a new one"
            )
            self.token = await self._renew_token()
            reply = await self._client.request(
                join.model_copy(update={"call_token": self.token.token})
            )
        assert isinstance(reply, Joined)
        return reply

    async def publish(self, patch: StatePatch) -> None:
        """Our state changed; the server tells the others. Not sent while the connection is
        down: the rejoin carries our whole state."""
        with contextlib.suppress(ConnectionError):
            await self._client.send(UpdateState(type="state", state=patch))

    async def leave(self) -> None:
        """Tells the server we left, if it can still be told."""
        with contextlib.suppress(SignalingError, ConnectionError, TimeoutError):
            await self._client.request(Leave(type="leave"), timeout=LEAVE_TIMEOUT)

    def _join_message(self, state: ParticipantState) -> Join:
        return Join(
            type="join",
            session_id=self._session_id,
            call_token=self.token.token,
            state=state,
        )


async def release_all(steps: Sequence[ReleaseStep], *, log_prefix: str) -> None:
    """A device gone mid-call can fail its release: the rest is still released and the kit
    still comes back to idle (else it would stay "ending" and refuse every call)."""
    for what, release in steps:
        try:
            await release()
        except Exception:
            log.exception("%sreleasing %s failed", log_prefix, what)
