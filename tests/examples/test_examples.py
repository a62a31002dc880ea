"""The examples in ``examples/`` run as a user runs them, to the end, and close what they
open: no traceback, no "Event loop is closed", no unclosed transport or task warnings."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.kits import running_server

REPO = Path(__file__).resolve().parents[2]
CALL = REPO / "examples" / "call.py"
SAID = [
    "room-a: room-b joined",
    "room-b: room-a joined",
    "room-b: room-a muted",
    "room-b: call ended",
    "room-a: call ended",
]


async def run_example(*args: str) -> tuple[int, str, str]:
    # -X dev: unclosed resources and never-awaited coroutines are reported on stderr.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        str(CALL),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return await proc.wait(), out.decode(), err.decode()


def assert_clean(code: int, out: str, err: str) -> None:
    assert code == 0, out + err
    for bad in ("Traceback", "Event loop is closed", "Unclosed", "ResourceWarning", "never"):
        assert bad not in err, err


async def test_the_call_example_runs_on_its_own_server() -> None:
    code, out, err = await run_example()
    assert_clean(code, out, err)
    for line in SAID:
        assert line in out.splitlines(), out


async def test_the_call_example_runs_against_a_running_server(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        token_c = await server.create_user("room-c", "Room C")
        token_d = await server.create_user("room-d", "Room D")
        code, out, err = await run_example(
            "--server", server.url, "--kit", "room-c", token_c, "--kit", "room-d", token_d
        )
    assert_clean(code, out, err)
    assert "room-c: Room D joined" in out.splitlines(), out
    assert "room-c: call ended" in out.splitlines(), out


def test_the_readme_shows_the_example_it_runs() -> None:
    readme = (REPO / "README.md").read_text()
    assert "examples/call.py" in readme
    source = CALL.read_text()
    # The README's Python is the marked part of the file the tests run, as it is now.
    marked = source.split("# README: begin")[1].split("\n", 1)[1].split("    # README: end")[0]
    assert f"```python\n{marked}```" in readme
