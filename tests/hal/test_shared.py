"""Pacing and callback delivery shared by the fakes."""

from __future__ import annotations

import asyncio

import pytest

from hal.callbacks import CallbackList
from hal.pacing import Pacer
from tests.hal.helpers import settle


async def test_pacer_wakes_at_each_deadline_never_before() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(0.01)
    pacer.start()
    start = loop.time()
    for expected in range(20):
        slot = await pacer.next_slot()
        woke = loop.time() - start
        if slot == expected:
            assert woke >= slot * 0.01 - 1e-6  # not early
        else:
            assert slot > expected  # only ever skips forward, when this test ran late
            break


async def test_pacer_skips_to_the_current_slot_beyond_its_lag() -> None:
    pacer = Pacer(0.01, max_lag=3)
    pacer.start()
    await pacer.next_slot()
    await asyncio.sleep(0.025)  # two slots behind: within the lag, delivered at once
    assert await pacer.next_slot() == 1
    assert pacer.skipped == 0
    await asyncio.sleep(0.1)  # ten slots behind: skip
    slot = await pacer.next_slot()
    assert slot >= 11
    assert pacer.skipped == slot - 2
    with pytest.raises(ValueError, match="period"):
        Pacer(0)


async def test_callbacks_run_later_on_the_loop_and_one_failure_spares_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    callbacks: CallbackList[int] = CallbackList()
    seen: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError("broken subscriber")

    callbacks.add(broken)
    unsubscribe = callbacks.add(seen.append)
    callbacks.fire(1)
    assert seen == []
    await settle()
    assert seen == [1]
    assert "broken subscriber" in caplog.text
    callbacks.fire(2)
    unsubscribe()  # after firing, before delivery: not called
    await settle()
    assert seen == [1]
    assert len(callbacks) == 1


def test_callbacks_without_a_loop_are_called_directly() -> None:
    callbacks: CallbackList[str] = CallbackList()
    seen: list[str] = []
    callbacks.add(seen.append)
    callbacks.fire("now")
    assert seen == ["now"]


async def test_callbacks_from_another_thread_arrive_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    callbacks: CallbackList[int] = CallbackList()
    arrived: asyncio.Future[int] = loop.create_future()
    callbacks.add(arrived.set_result)
    await asyncio.to_thread(callbacks.fire_threadsafe, loop, 7)
    assert await asyncio.wait_for(arrived, 2) == 7
