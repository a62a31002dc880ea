"""Shared bits for the HAL tests."""

from __future__ import annotations

import asyncio


async def settle(rounds: int = 5) -> None:
    """Let callbacks scheduled with call_soon (and the ones they schedule) run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
