"""Touch screens and USB mice through the kernel's evdev interface (/dev/input/event*).

No library: input_event records are unpacked with ``struct`` and the device's capabilities
are read with its ioctls. Each device is read by its own thread (blocking reads with a
timeout, so closing is prompt); a scanner thread picks up devices plugged in later. Events
reach the callback on the event loop.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hal.callbacks import CallbackList
from hal.config import HalConfig
from hal.input.base import InputError, PointerAction, PointerCallback, PointerEvent
from hal.kit import KitIdentity

log = logging.getLogger(__name__)

EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
SYN_REPORT = 0
BTN_LEFT, BTN_TOUCH = 0x110, 0x14A
REL_X, REL_Y = 0, 1
ABS_X, ABS_Y = 0, 1
ABS_MT_POSITION_X, ABS_MT_POSITION_Y = 0x35, 0x36
KEY_MAX, REL_MAX, ABS_MAX = 0x2FF, 0x0F, 0x3F

# struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; }, whose
# timeval fields are C longs: 24 bytes on 64-bit kernels, 16 on 32-bit ones.
INPUT_EVENT = struct.Struct("llHHi")
ABS_INFO = struct.Struct("6i")  # value, minimum, maximum, fuzz, flat, resolution
_IOC_READ = 2
RESCAN_SECONDS = 2.0
READ_TIMEOUT = 0.5
MOUSE_COUNTS = (1920, 1080)  # mouse counts across the screen at speed 1: a 1080p pixel each

Kind = Literal["touch", "mouse"]


def _ioc_read(number: int, size: int) -> int:
    return (_IOC_READ << 30) | (size << 16) | (ord("E") << 8) | number


def _bits(fd: int, event_type: int, highest: int) -> set[int]:
    length = highest // 8 + 1
    buffer = bytearray(length)
    fcntl.ioctl(fd, _ioc_read(0x20 + event_type, length), buffer, True)
    return {bit for bit in range(highest + 1) if buffer[bit // 8] >> (bit % 8) & 1}


@dataclass(frozen=True)
class Capabilities:
    name: str
    kind: Kind | None  # None: not a pointing device (a keyboard, a button...)
    x_range: tuple[int, int] = (0, 1)  # touch screens: the absolute axes' ranges
    y_range: tuple[int, int] = (0, 1)


def probe(fd: int) -> Capabilities:
    """What the evdev device open on ``fd`` is. Raises OSError when it is not one."""
    name_buffer = bytearray(256)
    fcntl.ioctl(fd, _ioc_read(0x06, len(name_buffer)), name_buffer, True)
    name = name_buffer.split(b"\0", 1)[0].decode(errors="replace")
    types = _bits(fd, 0, 0x1F)
    keys = _bits(fd, EV_KEY, KEY_MAX) if EV_KEY in types else set()
    if EV_ABS in types:
        axes = _bits(fd, EV_ABS, ABS_MAX)
        x_axis, y_axis = (
            (ABS_X, ABS_Y) if {ABS_X, ABS_Y} <= axes else (ABS_MT_POSITION_X, ABS_MT_POSITION_Y)
        )
        if {x_axis, y_axis} <= axes and keys & {BTN_TOUCH, BTN_LEFT}:
            return Capabilities(name, "touch", _abs_range(fd, x_axis), _abs_range(fd, y_axis))
    if EV_REL in types and {REL_X, REL_Y} <= _bits(fd, EV_REL, REL_MAX) and BTN_LEFT in keys:
        return Capabilities(name, "mouse")
    return Capabilities(name, None)


def _abs_range(fd: int, axis: int) -> tuple[int, int]:
    buffer = bytearray(ABS_INFO.size)
    fcntl.ioctl(fd, _ioc_read(0x40 + axis, ABS_INFO.size), buffer, True)
    _, minimum, maximum, *_ = ABS_INFO.unpack(buffer)
    return int(minimum), int(maximum)


class PointerDecoder:
    """Turns one device's raw events into PointerEvents, one per SYN_REPORT at most (and a
    press or release never merges with a move)."""

    def __init__(self, caps: Capabilities, speed: float = 1.0) -> None:
        self.caps = caps
        self.speed = speed
        self.x, self.y = 0.5, 0.5
        self.pressed = False
        self._pending_press: bool | None = None
        self._moved = False

    def feed(self, event_type: int, code: int, value: int) -> list[PointerEvent]:
        if event_type == EV_KEY and code in (BTN_TOUCH, BTN_LEFT):
            self._pending_press = value != 0
        elif event_type == EV_ABS and self.caps.kind == "touch":
            if code in (ABS_X, ABS_MT_POSITION_X):
                self.x = _fraction(value, self.caps.x_range)
                self._moved = True
            elif code in (ABS_Y, ABS_MT_POSITION_Y):
                self.y = _fraction(value, self.caps.y_range)
                self._moved = True
        elif event_type == EV_REL and self.caps.kind == "mouse":
            if code == REL_X:
                self.x = min(1.0, max(0.0, self.x + value * self.speed / MOUSE_COUNTS[0]))
                self._moved = True
            elif code == REL_Y:
                self.y = min(1.0, max(0.0, self.y + value * self.speed / MOUSE_COUNTS[1]))
                self._moved = True
        elif event_type == EV_SYN and code == SYN_REPORT:
            return self._report()
        return []

    def _report(self) -> list[PointerEvent]:
        out = []
        mouse = self.caps.kind == "mouse"
        press, self._pending_press = self._pending_press, None
        if press is not None and press != self.pressed:
            self.pressed = press
            action = PointerAction.DOWN if press else PointerAction.UP
            out.append(PointerEvent(action, self.x, self.y, mouse, self.caps.name))
        elif self._moved and (self.pressed or mouse):
            out.append(PointerEvent(PointerAction.MOVE, self.x, self.y, mouse, self.caps.name))
        self._moved = False
        return out


def _fraction(value: int, limits: tuple[int, int]) -> float:
    low, high = limits
    if high <= low:
        return 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


class DeviceReader:
    """Reads one device in a thread until it goes away or ``stop()``."""

    def __init__(
        self,
        fd: int,
        decoder: PointerDecoder,
        deliver: Callable[[PointerEvent], None],
        on_gone: Callable[[DeviceReader], None] = lambda reader: None,
    ) -> None:
        self.fd = fd
        self.decoder = decoder
        self._deliver = deliver
        self._on_gone = on_gone
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"input {decoder.caps.name}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.decoder.caps.name

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; the thread closes the device (it alone owns the descriptor)."""
        self._stopping.set()
        if self._thread.ident is None:  # never started
            with contextlib.suppress(OSError):
                os.close(self.fd)
        elif threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        pending = b""
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([self.fd], [], [], READ_TIMEOUT)
                if not readable:
                    continue
                try:
                    data = os.read(self.fd, INPUT_EVENT.size * 64)
                except BlockingIOError:
                    continue
                if not data:
                    break  # end of file: the device is gone
                pending += data
                usable = len(pending) - len(pending) % INPUT_EVENT.size
                for offset in range(0, usable, INPUT_EVENT.size):
                    _, _, event_type, code, value = INPUT_EVENT.unpack_from(pending, offset)
                    for event in self.decoder.feed(event_type, code, value):
                        self._deliver(event)
                pending = pending[usable:]
        except OSError as err:
            if err.errno != errno.ENODEV:
                log.warning("input %s: %s", self.name, err)
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            if not self._stopping.is_set():
                log.info("input: %s went away", self.name)
                self._on_gone(self)


class EvdevPointer:
    """Every touch screen and mouse under ``directory`` (or only those named in
    ``devices``, by name or path), as one pointer."""

    def __init__(
        self,
        directory: Path = Path("/dev/input"),
        *,
        devices: list[str] | None = None,
        speed: float = 1.0,
        prober: Callable[[int], Capabilities] = probe,
    ) -> None:
        self._directory = directory
        self._wanted = list(devices or [])
        self._speed = speed
        self._probe = prober
        self._callbacks: CallbackList[PointerEvent] = CallbackList()
        self._readers: dict[str, DeviceReader] = {}
        self._ignored: set[str] = set()
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scanner: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def devices(self) -> list[str]:
        with self._lock:
            return sorted(reader.name for reader in self._readers.values())

    def start(self, callback: PointerCallback) -> None:
        self._callbacks.add(callback)
        if self._scanner is None:
            self._loop = asyncio.get_running_loop()
            self._scanner = threading.Thread(target=self._scan_loop, name="input scan", daemon=True)
            self._scanner.start()

    async def close(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        if self._scanner is not None:
            self._scanner.join()
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for reader in readers:
            reader.stop()

    def _deliver(self, event: PointerEvent) -> None:
        if self._loop is not None:
            self._callbacks.fire_threadsafe(self._loop, event)

    def _scan_loop(self) -> None:
        while not self._stopping.is_set():
            self.scan()
            self._stopping.wait(RESCAN_SECONDS)

    def scan(self) -> None:
        """Open pointing devices that appeared since the last scan."""
        try:
            paths = sorted(self._directory.glob("event*"))
        except OSError as err:
            self._warn_once(str(self._directory), f"cannot list {self._directory}: {err}")
            return
        for path in paths:
            key = str(path)
            with self._lock:
                known = key in self._readers or key in self._ignored
            if not known:
                self._open(path)

    def _open(self, path: Path) -> None:
        key = str(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except PermissionError:
            self._warn_once(key, f"no permission to read {path} (is the user in group input?)")
            return
        except OSError as err:
            self._warn_once(key, f"cannot open {path}: {err}")
            return
        try:
            caps = self._probe(fd)
        except OSError:
            caps = Capabilities(path.name, None)
        wanted = not self._wanted or caps.name in self._wanted or key in self._wanted
        if caps.kind is None or not wanted:
            os.close(fd)
            with self._lock:
                self._ignored.add(key)
            return
        reader = DeviceReader(
            fd, PointerDecoder(caps, self._speed), self._deliver, lambda r: self._gone(key, r)
        )
        with self._lock:
            self._readers[key] = reader
        log.info("input: %s (%s) at %s", caps.name, caps.kind, path)
        reader.start()

    def _gone(self, key: str, reader: DeviceReader) -> None:
        with self._lock:
            if self._readers.get(key) is reader:
                del self._readers[key]

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("input: %s", message)


def create(config: HalConfig, kit: KitIdentity) -> EvdevPointer:
    """Devices come and go (USB): none present now is not an error."""
    settings = config.input
    if not hasattr(fcntl, "ioctl"):
        raise InputError("input", "evdev needs Linux")
    return EvdevPointer(devices=settings.devices, speed=settings.mouse_speed)
