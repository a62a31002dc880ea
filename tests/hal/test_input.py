"""Pointing devices: the evdev decoder and reader (fed through FIFOs), and the fake."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hal.config import HalConfig
from hal.input.base import Pointer, PointerAction, PointerEvent
from hal.input.fake import FakePointer
from hal.input.real import (
    ABS_MT_POSITION_X,
    ABS_MT_POSITION_Y,
    ABS_X,
    ABS_Y,
    BTN_LEFT,
    BTN_TOUCH,
    EV_ABS,
    EV_KEY,
    EV_REL,
    EV_SYN,
    INPUT_EVENT,
    REL_X,
    REL_Y,
    SYN_REPORT,
    Capabilities,
    EvdevPointer,
    PointerDecoder,
    probe,
)
from hal.kit import KitIdentity
from hal.registry import build_hardware

TOUCH = Capabilities("Touch", "touch", (0, 800), (0, 480))
MOUSE = Capabilities("Mouse", "mouse")


def feed(decoder: PointerDecoder, *events: tuple[int, int, int]) -> list[PointerEvent]:
    out = []
    for event in events:
        out += decoder.feed(*event)
    return out


SYN = (EV_SYN, SYN_REPORT, 0)


def test_touch_becomes_down_move_up_in_screen_fractions() -> None:
    decoder = PointerDecoder(TOUCH)
    events = feed(
        decoder,
        (EV_ABS, ABS_X, 200), (EV_ABS, ABS_Y, 120), (EV_KEY, BTN_TOUCH, 1), SYN,
        (EV_ABS, ABS_X, 400), SYN,
        (EV_ABS, ABS_MT_POSITION_Y, 240), SYN,
        (EV_KEY, BTN_TOUCH, 0), SYN,
    )  # fmt: skip
    assert [(e.action, e.x, e.y) for e in events] == [
        (PointerAction.DOWN, 0.25, 0.25),
        (PointerAction.MOVE, 0.5, 0.25),
        (PointerAction.MOVE, 0.5, 0.5),
        (PointerAction.UP, 0.5, 0.5),
    ]
    assert not any(e.cursor for e in events)
    # Without a finger down, movement means nothing.
    assert feed(decoder, (EV_ABS, ABS_X, 10), SYN) == []
    # Out-of-range values stay on the screen.
    down = feed(decoder, (EV_ABS, ABS_X, 900), (EV_ABS, ABS_Y, -5), (EV_KEY, BTN_TOUCH, 1), SYN)
    assert (down[0].x, down[0].y) == (1.0, 0.0)


def test_mouse_moves_a_cursor_and_clicks() -> None:
    decoder = PointerDecoder(MOUSE, speed=2.0)
    events = feed(
        decoder,
        (EV_REL, REL_X, 96), (EV_REL, REL_Y, -54), SYN,
        (EV_KEY, BTN_LEFT, 1), SYN,
        (EV_REL, REL_X, -5000), SYN,
        (EV_KEY, BTN_LEFT, 0), SYN,
    )  # fmt: skip
    assert [e.action for e in events] == [
        PointerAction.MOVE,
        PointerAction.DOWN,
        PointerAction.MOVE,
        PointerAction.UP,
    ]
    assert all(e.cursor for e in events)
    assert events[0].x == pytest.approx(0.6) and events[0].y == pytest.approx(0.4)
    assert events[2].x == 0.0  # clamped at the edge


def test_probe_refuses_what_is_not_an_evdev_device() -> None:
    read, write = os.pipe()
    try:
        with pytest.raises(OSError, match="ioctl"):
            probe(read)
    finally:
        os.close(read)
        os.close(write)


def _packed(*events: tuple[int, int, int]) -> bytes:
    return b"".join(INPUT_EVENT.pack(0, 0, *event) for event in events)


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_evdev_pointer_reads_devices_that_come_and_go(tmp_path: Path) -> None:
    """FIFOs stand in for /dev/input/event*: the reader threads, the scan for new devices,
    and a device going away are the real code; only the capability probe is stubbed."""
    fifo_dir = tmp_path
    kinds = {"event0": TOUCH, "event1": Capabilities("Keyboard", None), "event2": MOUSE}
    writers: dict[str, int] = {}
    holders = []
    for name in kinds:
        os.mkfifo(fifo_dir / name)
        holders.append(os.open(fifo_dir / name, os.O_RDONLY | os.O_NONBLOCK))
        writers[name] = os.open(fifo_dir / name, os.O_WRONLY)

    def fake_probe(fd: int) -> Capabilities:
        inode = os.fstat(fd).st_ino
        name = next(n for n in kinds if (fifo_dir / n).stat().st_ino == inode)
        return kinds[name]

    pointer = EvdevPointer(fifo_dir, prober=fake_probe)
    assert isinstance(pointer, Pointer)
    received: list[PointerEvent] = []
    try:
        pointer.start(received.append)
        await _until(lambda: pointer.devices == ["Mouse", "Touch"])
        os.write(
            writers["event0"],
            _packed((EV_ABS, ABS_MT_POSITION_X, 400), (EV_ABS, ABS_MT_POSITION_Y, 240))
            + _packed((EV_KEY, BTN_TOUCH, 1), SYN, (EV_KEY, BTN_TOUCH, 0), SYN),
        )
        await _until(lambda: len(received) == 2)
        assert [(e.action, e.x, e.y, e.device) for e in received] == [
            (PointerAction.DOWN, 0.5, 0.5, "Touch"),
            (PointerAction.UP, 0.5, 0.5, "Touch"),
        ]
        # Half an event now, the rest later: records are put back together.
        record = _packed((EV_REL, REL_X, 192), SYN)
        os.write(writers["event2"], record[:10])
        await asyncio.sleep(0.1)
        os.write(writers["event2"], record[10:])
        await _until(lambda: len(received) == 3)
        assert received[2].cursor and received[2].x == pytest.approx(0.6)
        # Unplugged: the reader sees the end and the device is dropped.
        os.close(writers.pop("event0"))
        os.close(holders.pop(0))
        await _until(lambda: pointer.devices == ["Mouse"])
    finally:
        await pointer.close()
        for fd in [*writers.values(), *holders]:
            os.close(fd)
    assert pointer.devices == []


async def test_evdev_pointer_without_devices_is_fine(tmp_path: Path) -> None:
    pointer = EvdevPointer(tmp_path / "missing")
    pointer.start(lambda event: None)
    pointer.scan()
    assert pointer.devices == []
    await pointer.close()


async def test_fake_pointer_taps_and_drags() -> None:
    pointer = FakePointer()
    received: list[PointerEvent] = []
    pointer.start(received.append)
    pointer.tap(0.25, 0.5)
    pointer.drag([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)])
    await asyncio.sleep(0)
    assert [e.action.value for e in received] == ["down", "up", "down", "move", "move", "up"]
    assert received[0].x == 0.25 and not received[0].cursor
    with pytest.raises(ValueError, match="x"):
        pointer.tap(1.5, 0.5)
    with pytest.raises(ValueError, match="drag"):
        pointer.drag([(0.1, 0.1)])
    await pointer.close()
    assert pointer.devices == []


async def test_registry_builds_the_pointer() -> None:
    config = HalConfig.model_validate({"backend": "fake", "input": {"fake_mouse": True}})
    hardware = build_hardware(config, KitIdentity("k", "K"))
    assert isinstance(hardware.pointer, FakePointer) and hardware.pointer.mouse
    assert hardware.kinds["input"] == "fake"
    await hardware.close()
    assert hardware.pointer.closed
    disabled = build_hardware(
        HalConfig.model_validate({"backend": "fake", "input": {"backend": "disabled"}}),
        KitIdentity("k", "K"),
    )
    assert disabled.pointer is None
    await disabled.close()


def test_event_codes_match_the_kernel() -> None:
    # linux/input-event-codes.h
    assert (ABS_Y, ABS_MT_POSITION_X, BTN_LEFT, BTN_TOUCH, REL_Y) == (1, 0x35, 0x110, 0x14A, 1)
