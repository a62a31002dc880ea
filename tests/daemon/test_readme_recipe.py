"""The README's first call between two kits, run as it is written: the room-b config and
commands are taken from the README (only the ports and paths are moved out of the way of
other kits on this machine), and room-a rings room-b."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import aiohttp

from tests.kits import free_port

REPO = Path(__file__).resolve().parents[2]
TOKEN_LINE = re.compile(r"API token created \([^)]*\): (\S+)")


def recipe() -> tuple[list[str], str]:
    """The first-call section's shell blocks: (command lines, the room-b TOML)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A first call between two kits", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    text = "\n".join(blocks)
    toml = text.split("<<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0]
    commands = [
        line.split("#", 1)[0].strip()  # without the comment
        for line in text.splitlines()
        if line.startswith((".venv/bin/", "make "))
    ]
    return commands, toml


async def start(config: Path) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(60):
        while not any(" is ready" in line for line in lines):
            line = (await proc.stdout.readline()).decode()
            assert line, "callbox run exited early:\n" + "".join(lines)
            lines.append(line)
    return proc, lines


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)


def api_token(lines: list[str]) -> str:
    tokens = [m[1] for line in lines if (m := TOKEN_LINE.search(line))]
    assert len(tokens) == 1, "".join(lines)
    return tokens[0]


async def test_the_readmes_first_call_between_two_kits(tmp_path: Path) -> None:
    commands, room_b_toml = recipe()
    assert commands[0].startswith("make run")
    assert commands[1] == '.venv/bin/callbox users add room-b --name "Room B"'
    assert commands[2] == ".venv/bin/callbox run --config /tmp/room-b.toml"

    server_port, a_port, b_port = free_port(), free_port(), free_port()
    room_a = tmp_path / "room-a.toml"  # make run's defaults, on free ports
    room_a.write_text(
        f'[server]\nlisten = "127.0.0.1:{server_port}"\nurl = "http://127.0.0.1:{server_port}"\n'
        f'[api]\nlisten = "127.0.0.1:{a_port}"\n[hal]\nbackend = "fake"\n'
        f'[paths]\nstate = "{tmp_path / "room-a"}"\n'
    )
    kit_a, a_lines = await start(room_a)
    kit_b = None
    try:
        # In a second terminal: the README's commands, with the config file moved.
        users_add = [*shlex.split(commands[1])[1:], "--config", str(room_a)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance", *users_add,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        auth_token = out.decode().strip()
        toml = (
            room_b_toml.replace("...the token printed above...", auth_token)
            .replace("127.0.0.1:8090", f"127.0.0.1:{server_port}")
            .replace("127.0.0.1:8081", f"127.0.0.1:{b_port}")
            .replace("/tmp/room-b", str(tmp_path / "room-b"))
        )
        room_b = tmp_path / "room-b.toml"
        room_b.write_text(toml + '\n[hal]\nbackend = "fake"\n')
        kit_b, b_lines = await start(room_b)

        # room-a rings room-b, listed online among the kits.
        headers_a = {"Authorization": f"Bearer {api_token(a_lines)}"}
        headers_b = {"Authorization": f"Bearer {api_token(b_lines)}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{a_port}/api/v1/kits", headers=headers_a) as r:
                assert (await r.json())["kits"] == [
                    {"uid": "room-b", "name": "Room B", "online": True}
                ]
            async with http.post(
                f"http://127.0.0.1:{a_port}/api/v1/calls",
                headers=headers_a,
                json={"receiver": "room-b"},
            ) as r:
                assert r.status == 201, await r.text()
            async with asyncio.timeout(10):
                while True:
                    async with http.get(
                        f"http://127.0.0.1:{b_port}/api/v1/calls", headers=headers_b
                    ) as r:
                        ringing = (await r.json())["calls"]
                    if ringing:
                        break
                    await asyncio.sleep(0.1)
            assert ringing[0]["initiator"]["uid"] == "room-a"
    finally:
        if kit_b is not None:
            await stop(kit_b)
        await stop(kit_a)
