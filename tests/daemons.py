"""Whole daemons on fake hardware in the test process: one hosting the session server, the
other a kit of it, each configured as a test needs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from appliance.config import merge, validate
from appliance.daemon import Daemon


def kit_config(
    tmp: Path, uid: str, tone: float, *, hal: dict[str, Any] | None = None, **server: Any
) -> dict[str, Any]:
    """A kit on fake hardware with small video, its server and API on free ports; ``hal``
    is merged over the defaults, ``server`` keys go to ``[server]``."""
    defaults = {
        "backend": "fake",
        "audio": {"fake_tone_hz": tone},
        "camera": {"width": 320, "height": 240, "fps": 15},
    }
    return {
        "kit": {"uid": uid, "name": uid.replace("-", " ").title()},
        "server": {"listen": "127.0.0.1:0", **server},
        "api": {"listen": "127.0.0.1:0"},
        "hal": merge(defaults, hal or {}),
        "paths": {"state": str(tmp / uid)},
    }


@contextlib.asynccontextmanager
async def host_and_guest(
    tmp: Path, *, hal: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Daemon, Daemon]]:
    """Kit "room-a" hosting the session server and kit "room-b" using it (tones 400 and
    650 Hz), both started; stopped on the way out."""
    host = Daemon(validate(kit_config(tmp, "room-a", 400, hal=hal)))
    await host.start()
    try:
        assert host.server is not None
        token = await host.server.create_user("room-b", "Room B")
        guest = Daemon(
            validate(
                kit_config(
                    tmp,
                    "room-b",
                    650,
                    hal=hal,
                    embedded=False,
                    url=host.server.url,
                    auth_token=token,
                )
            )
        )
        await guest.start()
        try:
            yield host, guest
        finally:
            await guest.stop()
    finally:
        await host.stop()
