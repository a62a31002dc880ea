"""Headphone jack detection, where the sound card reports it.

Cards that sense the jack (many codec HATs and USB headsets; not the Pi's own 3.5 mm
output) expose a switch input device whose SW_HEADPHONE_INSERT follows the plug. It is read
with plain evdev reads on a thread: the initial state with the EVIOCGSW ioctl, then each
EV_SW event.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import select
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SYSFS = Path("/sys")
DEV = Path("/dev")
EV_SW = 0x05
SW_HEADPHONE_INSERT = 0x02
EVENT = struct.Struct("@llHHi")  # struct input_event: timeval (two longs), type, code, value
SWITCH_BYTES = 8  # enough bits for every SW_* code (SW_MAX is 0x10)
POLL_MS = 200  # how often the reader checks whether it should stop


def eviocgsw(length: int) -> int:
    """_IOC(_IOC_READ, 'E', 0x1b, length): read the switch states."""
    return (2 << 30) | (length << 16) | (ord("E") << 8) | 0x1B


def find_headphone_jack(sysfs: Path = SYSFS, dev: Path = DEV) -> Path | None:
    """The event device that reports SW_HEADPHONE_INSERT, if any card has one."""
    for event in sorted((sysfs / "class" / "input").glob("event*")):
        capabilities = event / "device" / "capabilities" / "sw"
        try:
            mask = int(capabilities.read_text().split()[-1], 16)
        except (OSError, ValueError, IndexError):
            continue
        if mask & (1 << SW_HEADPHONE_INSERT):
            return dev / "input" / event.name
    return None


def read_plugged(fd: int) -> bool | None:
    """The jack's state now, or None when the device cannot say (not an evdev device)."""
    buffer = bytearray(SWITCH_BYTES)
    try:
        fcntl.ioctl(fd, eviocgsw(SWITCH_BYTES), buffer)
    except OSError:
        return None
    return bool(buffer[SW_HEADPHONE_INSERT // 8] & (1 << (SW_HEADPHONE_INSERT % 8)))


class HeadphoneJack:
    """Follows one jack switch device. ``on_change(plugged)`` runs on the event loop. The
    reader thread ends on ``stop()`` or once that loop has closed."""

    def __init__(self, device: Path, on_change: Callable[[bool], None]) -> None:
        self.device = device
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.plugged = False

    def start(self) -> None:
        """Read the current state (on the calling thread: one ioctl) and start following."""
        loop = asyncio.get_running_loop()
        fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
        state = read_plugged(fd)
        self.plugged = bool(state)
        self._thread = threading.Thread(
            target=self._follow, args=(fd, loop), name=f"jack {self.device}", daemon=True
        )
        self._thread.start()

    def _follow(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        pending = b""
        try:
            # Also ends with the loop it reports to: nobody is left to tell.
            while not self._stop.is_set() and not loop.is_closed():
                if not poller.poll(POLL_MS):
                    continue
                try:
                    chunk = os.read(fd, EVENT.size * 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self._stop.wait(POLL_MS / 1000)  # a FIFO with no writer: wait for one
                    continue
                pending += chunk
                while len(pending) >= EVENT.size:
                    _, _, kind, code, value = EVENT.unpack_from(pending)
                    pending = pending[EVENT.size :]
                    if kind == EV_SW and code == SW_HEADPHONE_INSERT:
                        self._deliver(loop, bool(value))
        except OSError as exc:
            if exc.errno != errno.EBADF:
                log.warning("headphone jack %s: %s; no longer followed", self.device, exc)
        finally:
            os.close(fd)

    def _deliver(self, loop: asyncio.AbstractEventLoop, plugged: bool) -> None:
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._changed, plugged)

    def _changed(self, plugged: bool) -> None:
        if plugged != self.plugged:
            self.plugged = plugged
            self._on_change(plugged)

    async def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 2 * POLL_MS / 1000 + 1)
