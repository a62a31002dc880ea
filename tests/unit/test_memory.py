"""An idle kit hands the C heap's free pages back to the system (``appliance.memory``)."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.calls import SessionState
from appliance.memory import SETTLE, IdleTrim, resident_mib
from tests.clock import RecordingSleep
from tests.kits import KitFactory

ROOT = Path(__file__).resolve().parents[2]

FREED_BUT_HELD = textwrap.dedent(
    """
    import re
    from appliance.memory import trim_heap

    def rss_mib():
        status = open("/proc/self/status").read()
        return int(re.search(r"VmRSS:\\s+(\\d+)", status).group(1)) / 1024

    before = rss_mib()
    blocks = [bytes(100_000) for _ in range(1000)]  # 100 MB of the heap, under mmap's size
    pin = bytes(100_000)  # above them: glibc trims the heap's top by itself, not its middle
    del blocks
    held = rss_mib()
    assert trim_heap()
    print(round(held - before), round(held - rss_mib()))
    """
)


def test_trim_heap_gives_freed_heap_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FREED_BUT_HELD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    held, handed_back = map(int, done.stdout.split())
    assert held > 50  # MiB freed but kept by the C heap
    assert handed_back > held * 0.9


async def test_the_heap_is_trimmed_once_a_call_has_ended_and_the_kit_stayed_idle(
    kits: KitFactory,
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    trims: list[SessionState] = []
    sleep = RecordingSleep(gated=True)

    def trim() -> bool:
        trims.append(a.calls.state)
        return True

    trimmer = IdleTrim(a.calls, trim=trim, sleep=sleep)
    following = asyncio.create_task(trimmer.follow())
    try:
        await a.join("first")
        await b.join("first")
        await a.wait_for_video_from("room-b")
        await a.calls.end_session()
        assert await sleep.until(1) == [SETTLE]
        await a.join("second")  # a call again before the kit settled: no trim in it
        sleep.gate.set()
        await asyncio.sleep(0.1)
        assert trims == []

        await a.calls.end_session()
        async with asyncio.timeout(10):
            while not trims:
                await asyncio.sleep(0.01)
        assert trims == [SessionState.IDLE]
    finally:
        following.cancel()


def test_resident_mib_reads_this_processs_resident_memory() -> None:
    held = bytearray(64 * 2**20)  # 64 MiB, every page written
    held[::4096] = b"x" * len(held[::4096])
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]
    resident = resident_mib()
    assert resident is not None
    assert resident > 64
    assert abs(resident - rss) < 4


async def test_a_trim_that_gave_memory_back_is_logged_with_the_resident_memory(
    kits: KitFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a = await kits("room-a")
    results = [False, True]  # the C heap had nothing to give back, then it had
    trimmer = IdleTrim(a.calls, trim=lambda: results.pop(0), sleep=RecordingSleep())
    with caplog.at_level(logging.INFO, logger="appliance.memory"):
        await trimmer.settled()
        assert [r for r in caplog.records if r.name == "appliance.memory"] == []
        await trimmer.settled()
    [message] = [r.getMessage() for r in caplog.records if r.name == "appliance.memory"]
    assert re.fullmatch(r"idle: heap trimmed, resident memory \d+ -> \d+ MiB", message)
