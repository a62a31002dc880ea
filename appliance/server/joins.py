"""Kits asking to join a session server they found on the LAN.

A kit the server does not know files a join request (no credentials: anybody on the LAN can
ask) and gets a secret to poll it with; the server's operator lists the pending requests and
approves or rejects each (admin key). An approved kit becomes a user, and the poll with its
secret hands over its auth token once. Nothing is trusted because a kit announced itself or
asked. Pending requests live in memory: a restarted server forgets them, and kits ask again.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.server.errors import ServerError
from appliance.signaling.messages import Uid

MAX_PENDING = 32  # beyond this, requests are refused until the operator acts
MAX_PER_ADDRESS = 4
REQUEST_TTL = 24 * 3600.0  # an unanswered request is forgotten after a day


class JoinRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    uid: Uid
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    # The kit's own TLS fingerprint, shown to the operator to compare with its screen.
    fingerprint: str | None = Field(
        None, pattern=r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$"
    )


@dataclass
class JoinRequest:
    id: int
    uid: str
    name: str
    fingerprint: str | None
    address: str
    requested_at: float
    secret: str = field(repr=False)
    status: Literal["pending", "approved", "rejected"] = "pending"
    auth_token: str | None = field(default=None, repr=False)

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "uid": self.uid,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "address": self.address,
            "requested_at": self.requested_at,
            "status": self.status,
        }


class JoinRequests:
    def __init__(self) -> None:
        self._requests: dict[int, JoinRequest] = {}
        self._ids = itertools.count(1)

    def _expire(self, now: float) -> None:
        for request in list(self._requests.values()):
            if now - request.requested_at > REQUEST_TTL:
                del self._requests[request.id]

    def file(self, body: JoinRequestBody, address: str) -> JoinRequest:
        now = time.time()
        self._expire(now)
        pending = [r for r in self._requests.values() if r.status == "pending"]
        if any(r.uid == body.uid for r in pending):
            raise ServerError("request-pending", f"{body.uid} has asked already", status=409)
        if sum(r.address == address for r in pending) >= MAX_PER_ADDRESS:
            raise ServerError("too-many-requests", "too many requests from there", status=429)
        if len(pending) >= MAX_PENDING:
            raise ServerError("too-many-requests", "too many pending requests", status=429)
        request = JoinRequest(
            next(self._ids), body.uid, body.name, body.fingerprint, address, now,
            secret=secrets.token_urlsafe(32),
        )  # fmt: skip
        self._requests[request.id] = request
        return request

    def pending(self) -> list[JoinRequest]:
        self._expire(time.time())
        return [r for r in self._requests.values() if r.status == "pending"]

    def get(self, request_id: int) -> JoinRequest:
        request = self._requests.get(request_id)
        if request is None:
            raise ServerError("unknown-request", f"no join request {request_id}", status=404)
        return request

    def decided(self, request_id: int) -> JoinRequest:
        request = self.get(request_id)
        if request.status != "pending":
            raise ServerError(
                "already-decided", f"request {request_id} is {request.status}", status=409
            )
        return request

    def poll(self, request_id: int, secret: str) -> JoinRequest:
        """The request, for the kit that filed it; an approved one's token is handed once."""
        request = self._requests.get(request_id)
        if request is None or not hmac.compare_digest(secret.encode(), request.secret.encode()):
            raise ServerError("unknown-request", "no such request, or not yours", status=404)
        if request.status != "pending":
            del self._requests[request_id]  # told once
        return request
