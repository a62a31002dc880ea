"""The README's commands, run as they are written: the first call between two kits (room-a
by ``make run``, room-b's user, config and ``callbox run``, the ring by curl) and the REST
API's curl examples. Only ports and paths are moved out of the way of other kits on this
machine. (``journalctl`` runs in the virtual kit, ``install.sh`` in tests/images.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.api.daemon import TOKEN, running_daemon
from tests.kits import free_port
from tests.readme import lines_running, shell_blocks, without_comment

REPO = Path(__file__).resolve().parents[2]
TOKEN_LINE = re.compile(r"API token created \([^)]*\): (\S+)")


def recipe() -> tuple[list[str], str, str]:
    """The first-call section: (command lines, the room-b TOML, the curl that rings)."""
    text = shell_blocks("## A first call between two kits")
    toml = text.split("<<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0]
    commands = [
        without_comment(line)
        for line in text.splitlines()
        if line.startswith((".venv/bin/", "make "))
    ]
    (ring,) = [line for line in text.splitlines() if line.startswith("curl ")]
    return commands, toml, ring


async def shell(command: str, **env: str) -> str:
    """``command`` run by sh as a person types it; its output (it must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", command, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (command, err.decode())
    return out.decode()


async def start(*command: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """``command`` started in a session of its own (make and the kit it runs stop together),
    once it logs that the kit is ready; with what it logged."""
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=REPO, start_new_session=True,
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
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)


def api_token(lines: list[str]) -> str:
    tokens = [m[1] for line in lines if (m := TOKEN_LINE.search(line))]
    assert len(tokens) == 1, "".join(lines)
    return tokens[0]


async def test_the_readmes_first_call_between_two_kits(tmp_path: Path) -> None:
    commands, room_b_toml, ring = recipe()
    assert commands[0] == "make run"
    assert commands[1] == '.venv/bin/callbox users add room-b --name "Room B"'
    assert commands[2] == ".venv/bin/callbox run --config /tmp/room-b.toml"

    server_port, a_port, b_port = free_port(), free_port(), free_port()
    room_a = tmp_path / "room-a.toml"  # make run's defaults, on free ports
    room_a.write_text(
        f'[server]\nlisten = "127.0.0.1:{server_port}"\nurl = "http://127.0.0.1:{server_port}"\n'
        f'[api]\nlisten = "127.0.0.1:{a_port}"\n[hal]\nbackend = "fake"\n'
        f'[paths]\nstate = "{tmp_path / "room-a"}"\n'
    )
    kit_a, a_lines = await start(*shlex.split(commands[0]), f"CONFIG={room_a}")
    kit_b = None
    try:
        # In a second terminal: the README's commands, with the config file moved.
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(commands[1]), "--config", str(room_a), cwd=REPO,
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
        kit_b, b_lines = await start(*shlex.split(commands[2])[:-1], str(room_b))

        # room-a rings room-b, listed online among the kits.
        headers_a = {"Authorization": f"Bearer {api_token(a_lines)}"}
        headers_b = {"Authorization": f"Bearer {api_token(b_lines)}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{a_port}/api/v1/kits", headers=headers_a) as r:
                assert (await r.json())["kits"] == [
                    {"uid": "room-b", "name": "Room B", "online": True}
                ]
            rang = await shell(
                ring.replace("localhost:8080", f"localhost:{a_port}"),
                ROOM_A_TOKEN=api_token(a_lines),
            )
            assert json.loads(rang)["receiver"]["uid"] == "room-b", rang
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


async def test_the_readmes_rest_api_examples(tmp_path: Path) -> None:
    block = shell_blocks("## The REST API")
    assert block.startswith("TOKEN=...")
    start_session, mute, patch_config = lines_running(block, "curl")
    # The camera at 10 fps first: the example's 15 is then a change.
    async with running_daemon(tmp_path, hal={"camera": {"fps": 10}}) as kit:
        assert kit.api is not None and kit.calls is not None
        port = kit.api.url.rsplit(":", 1)[1]

        async def run(command: str) -> Any:
            out = await shell(command.replace("localhost:8080", f"localhost:{port}"), TOKEN=TOKEN)
            return json.loads(out)

        started = await run(start_session)
        assert (started["state"], started["session_id"]) == ("active", "standup"), started
        assert (await run(mute))["local"]["audio_muted"] is True
        changed = await run(patch_config)
        assert {"field": "hal.camera.fps", "applies": "next-call"}.items() <= changed["changes"][
            0
        ].items(), changed
        assert kit.calls.snapshot()["local"]["audio_muted"] is True
