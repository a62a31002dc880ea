"""Who a kit is, and stable per-kit choices derived from that (fake colours, fake tones)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class KitIdentity:
    uid: str  # the kit's user id on the session server
    name: str  # shown to people


def uid_fraction(uid: str, purpose: str) -> float:
    """A number in [0, 1) that depends only on ``uid`` and ``purpose``: the same kit gets the
    same fake colour and tone in every run and process, different purposes are independent."""
    digest = hashlib.sha256(f"{purpose}\0{uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
