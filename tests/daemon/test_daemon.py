"""The daemon as the appliance runs it: config, fake hardware, embedded server, buttons."""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from appliance.config import validate
from appliance.daemon import Daemon
from appliance.events import CallEvent, UserMuted
from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput
from hal.audio.pcm import dominant_frequency, rms_dbfs
from hal.buttons.base import LedName, LedState
from hal.buttons.fake import FakeButtons
from tests.daemons import host_and_guest, kit_config


@pytest.fixture
async def two_daemons(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    async with host_and_guest(tmp_path) as daemons:
        yield daemons


def buttons(daemon: Daemon) -> FakeButtons:
    assert daemon.hardware is not None
    return cast(FakeButtons, daemon.hardware.buttons)


def speaker(daemon: Daemon) -> FakeAudioOutput:
    assert daemon.hardware is not None
    return cast(FakeAudioOutput, daemon.hardware.outputs[Route.SPEAKER])


async def until(condition: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def hears(daemon: Daemon, hz: float) -> bool:
    pcm = speaker(daemon).recent(0.2)
    return len(pcm) > 0 and abs(dominant_frequency(pcm) - hz) < 15 and rms_dbfs(pcm) > -40


async def test_buttons_answer_mute_and_end_a_call(two_daemons: tuple[Daemon, Daemon]) -> None:
    host, guest = two_daemons
    assert host.kit is not None
    assert host.calls is not None
    assert guest.calls is not None
    await host.kit.place_call("room-b")
    await until(lambda: guest.calls is not None and guest.calls.state.value == "ringing")
    assert await buttons(guest).observed_led(LedName.RINGING) == LedState.BLINK

    buttons(guest).press("mute")  # answers the ringing call
    await until(lambda: hears(host, 650) and hears(guest, 400))

    with guest.calls.events.subscribe() as events:
        buttons(host).press("mute")  # mutes the host's microphone
        event = await asyncio.wait_for(_next_muted(events), 5)
    assert event.change.muted.uid == "room-a"
    assert event.change.is_muted is True
    await until(lambda: rms_dbfs(speaker(guest).recent(0.2)) < -60)
    assert await buttons(host).observed_led(LedName.MUTED) == LedState.ON

    buttons(host).press("mute")  # and back
    await until(lambda: hears(guest, 400))
    assert await buttons(host).observed_led(LedName.MUTED) == LedState.OFF

    buttons(guest).press("end")
    await until(lambda: host.calls.state.value == "idle" and guest.calls.state.value == "idle")
    log = await host.calls._api.calls(host.calls._auth_token)
    assert log[0].status == "ended"


async def _next_muted(events: asyncio.Queue[CallEvent]) -> UserMuted:
    while True:
        match (await events.get()).event:
            case UserMuted() as muted:
                return muted


async def test_callbox_run_starts_says_fake_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "callbox.toml"
    config.write_text(
        f"""
[kit]
uid = "lobby"
name = "Lobby"
[server]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:0"
[hal]
backend = "fake"
[paths]
state = "{tmp_path / "state"}"
"""
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not any("is ready" in line for line in lines):
            line = (await proc.stdout.readline()).decode()
            assert line, "callbox run exited early:\n" + "".join(lines)
            lines.append(line)
    assert any("FAKE HARDWARE" in line for line in lines)
    proc.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
    assert await proc.wait() == 0, rest
    assert "stopping" in rest
    assert (tmp_path / "state" / "auth_token").read_text().strip()


async def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "callbox.toml"
    config.write_text('[kit]\nuid = "has space"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"kit.uid" in err


async def test_a_kit_starts_without_its_server_and_connects_when_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from appliance.config import ServerConfig
    from appliance.server import SessionServer
    from tests.kits import free_port

    port = free_port()
    server = SessionServer(
        ServerConfig(listen=f"127.0.0.1:{port}", admin_key="k" * 32), tmp_path / "server.db"
    )
    await server.start()
    token = await server.create_user("room-b", "Room B")
    await server.stop()  # the LAN server goes down before the kit boots

    kit = Daemon(
        validate(
            kit_config(
                tmp_path,
                "room-b",
                650,
                embedded=False,
                url=f"http://127.0.0.1:{port}",
                auth_token=token,
            )
        )
    )
    caplog.set_level(logging.INFO, logger="appliance.daemon")
    await kit.start()  # does not wait forever, does not fail
    try:
        assert kit.calls is not None
        assert not kit.calls.connected
        assert "is ready" not in caplog.text  # "ready" means calls can be made
        assert "not ready for calls: the session server at" in caplog.text
        server = SessionServer(
            ServerConfig(listen=f"127.0.0.1:{port}", admin_key="k" * 32), tmp_path / "server.db"
        )
        await server.start()
        try:
            await until(lambda: kit.calls is not None and kit.calls.connected, timeout=20)
            await until(lambda: "Room B (room-b) is ready" in caplog.text)
        finally:
            await server.stop()
    finally:
        await kit.stop()


async def test_a_kit_with_another_kits_token_is_refused_at_start(tmp_path: Path) -> None:
    from appliance.calls import CallsError

    host = Daemon(validate(kit_config(tmp_path, "room-a", 400)))
    await host.start()
    try:
        assert host.server is not None
        await host.server.create_user("room-b", "Room B")
        room_a_token = (tmp_path / "room-a" / "auth_token").read_text().strip()
        posing = Daemon(
            validate(
                kit_config(
                    tmp_path,
                    "room-b",
                    650,
                    embedded=False,
                    url=host.server.url,
                    auth_token=room_a_token,
                )
            )
        )
        try:
            with pytest.raises(CallsError) as refused:
                await posing.start()
        finally:
            await posing.stop()
        assert refused.value.code == "uid-mismatch"
        assert "belongs to user 'room-a', not 'room-b'" in str(refused.value)
    finally:
        await host.stop()


async def test_a_failed_first_start_makes_no_api_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = kit_config(tmp_path, "room-a", 400)
    config["api"]["listen"] = f"127.0.0.1:{port}"
    token_file = tmp_path / "room-a" / "api_token.sha256"
    kit = Daemon(validate(config))
    try:
        with pytest.raises(OSError, match="address already in use"):
            await kit.start()
    finally:
        await kit.stop()
        taken.close()
    assert not token_file.exists()
    assert "API token created" not in caplog.text

    kit = Daemon(validate(config))  # the fixed restart: the token it prints is the one
    await kit.start()
    try:
        assert token_file.exists()
        assert "API token created" in caplog.text
        assert kit.api is not None and kit.api.tokens.fresh_token is not None
        assert kit.api.tokens.valid(kit.api.tokens.fresh_token)
    finally:
        await kit.stop()
