"""The systemd watchdog, pinged from the event loop itself: if the loop stops turning,
the pings stop and systemd kills and restarts the daemon."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from appliance.systemd.notify import Notifier, NotifyError

log = logging.getLogger(__name__)


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when no
    watchdog is armed for this process (``WATCHDOG_PID`` names another one)."""
    environ = os.environ if environ is None else environ
    pid = os.getpid() if pid is None else pid
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            raise NotifyError(f"WATCHDOG_PID={owner!r}: expected a process id") from None
    try:
        value = int(usec)
    except ValueError:
        raise NotifyError(f"WATCHDOG_USEC={usec!r}: expected microseconds") from None
    if value <= 0:
        raise NotifyError(f"WATCHDOG_USEC={usec!r}: expected a positive number")
    return value / 2 / 1_000_000


async def keep_alive(notifier: Notifier, interval: float) -> None:
    """Ping every ``interval`` seconds; say so when the loop was held up for long enough
    to put the watchdog at risk (the ping came more than half an interval late)."""
    loop = asyncio.get_running_loop()
    while True:
        notifier.send("WATCHDOG=1")
        due = loop.time() + interval
        await asyncio.sleep(interval)
        late = loop.time() - due
        if late > interval / 2:
            log.warning("event loop was blocked for %.1f s (watchdog ping late)", late)
