"""TaskSet: tasks are kept until done, every failure is logged, close cancels the rest."""

import asyncio
import logging

import pytest

from appliance.tasks import TaskSet

log = logging.getLogger("tests.tasks")


async def test_failures_are_logged_and_expected_ones_briefly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet(log, prefix="owner: ", expected=(ValueError,))

    async def fail(err: Exception) -> None:
        raise err

    async def fine() -> None:
        pass

    tasks.spawn(fail(RuntimeError("broken")), "crash")
    tasks.spawn(fail(ValueError("refused")), "refusal")
    tasks.spawn(fine(), "fine")
    with caplog.at_level(logging.WARNING, logger="tests.tasks"):
        await tasks.wait()
        await asyncio.sleep(0)
    records = {(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records}
    assert records == {
        ("ERROR", "owner: crash failed", True),
        ("WARNING", "owner: refusal: refused", False),
    }
    assert len(tasks) == 0


async def test_close_cancels_what_is_left() -> None:
    tasks = TaskSet(log)
    task = tasks.spawn(asyncio.sleep(60), "sleeper")
    assert list(tasks) == [task]
    await tasks.close()
    assert task.cancelled()
    assert len(tasks) == 0
