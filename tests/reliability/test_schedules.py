"""Backoffs and retries follow their schedules: checked with a recording sleep, not by
waiting, so a change that drops a backoff (or its jitter) fails here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from appliance.calls import Calls
from appliance.calls.calls import RECONNECT_FIRST, RECONNECT_MAX
from appliance.calls.session import MediaOptions
from appliance.config import ServerLimits
from appliance.media.routes import RETRY_FIRST, RETRY_MAX, AudioRouter
from hal.audio.base import AudioError, Route
from hal.audio.fake import FakeAudioOutput
from hal.config import HalConfig
from hal.registry import Hardware, KitIdentity, build_hardware
from tests.clock import RecordingSleep
from tests.kits import free_port, running_server
from tests.server.conftest import ServerFactory


async def test_a_failed_audio_route_is_retried_from_1_s_backing_off_to_30_s() -> None:
    speaker = FakeAudioOutput(Route.SPEAKER)
    earpiece = FakeAudioOutput(Route.EARPIECE)
    modes: list[list[Route]] = []
    sleep = RecordingSleep()
    router = AudioRouter(
        {Route.SPEAKER: speaker, Route.EARPIECE: earpiece},
        modes.append,
        lambda route: None,
        sleep=sleep,
    )
    try:
        earpiece.fail()
        await router.output_failed(earpiece, AudioError("audio earpiece", "device is gone"))
        assert router.available == [Route.SPEAKER]
        delays = await sleep.until(9)
        assert (RETRY_FIRST, RETRY_MAX) == (1.0, 30.0)
        assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        assert earpiece.opens == 0  # each try failed

        # The device works again: the next try opens it and the route is offered again.
        earpiece.restore()
        async with asyncio.timeout(10):
            while Route.EARPIECE not in router.available:
                await asyncio.sleep(0)
        assert earpiece.opens == 1
        assert modes[-1] == [Route.SPEAKER, Route.EARPIECE]
        tries = len(sleep.delays)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(sleep.delays) == tries  # the retry stopped once it worked
    finally:
        await router.close()


def kit_calls(
    tmp_path: Path, port: int, token: str, sleep: RecordingSleep
) -> tuple[Calls, Hardware]:
    """Kit room-a's call API for the session server on ``port``, sleeping through ``sleep``."""
    hardware = build_hardware(
        HalConfig.model_validate({"backend": "fake"}), KitIdentity("room-a", "Room A")
    )
    calls = Calls(
        server_url=f"http://127.0.0.1:{port}",
        uid="room-a",
        auth_token=token,
        hardware=hardware,
        options=MediaOptions(recordings_dir=tmp_path / "recordings"),
        sleep=sleep,
    )
    return calls, hardware


async def test_a_kit_that_lost_its_server_reconnects_backing_off_with_jitter(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with running_server(tmp_path, listen=f"127.0.0.1:{port}") as server:
        token = await server.create_user("room-a", "Room A")
    sleep = RecordingSleep()
    calls, hardware = kit_calls(tmp_path, port, token, sleep)
    try:
        assert not await calls.connect(patience=0)  # nobody listens: keeps trying
        delays = await sleep.until(8)
        bases = [RECONNECT_FIRST * 2**i for i in range(4)] + [RECONNECT_MAX] * 4
        assert bases == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
        ratios = [delay / base for delay, base in zip(delays, bases, strict=True)]
        assert all(0.8 <= ratio <= 1.2 for ratio in ratios), delays
        assert len({round(ratio, 6) for ratio in ratios}) > 1, "no jitter"

        # The server is back on its port (same users): the next try gets in, and stops.
        async with running_server(tmp_path, listen=f"127.0.0.1:{port}"):
            async with asyncio.timeout(10):
                while not calls.connected:
                    await asyncio.sleep(0.01)
            tries = len(sleep.delays)
            await asyncio.sleep(0.05)
            assert len(sleep.delays) == tries
    finally:
        await calls.close()
        await hardware.close()


async def test_a_kit_starting_without_its_server_tries_it_backing_off_with_jitter(
    tmp_path: Path,
) -> None:
    """At start, ``connect(patience)`` retries on the same schedule as a reconnection while
    the patience lasts, then leaves the tries to the background."""
    port = free_port()  # nobody listens
    sleep = RecordingSleep()
    calls, hardware = kit_calls(tmp_path, port, "unused", sleep)
    try:
        # A patience of 3 s holds the waits of about 0.5, 1 and 2 s; the next (4 s) is past it.
        assert not await calls.connect(patience=3.0)
        started = sleep.delays[:3]
        ratios = [delay / base for delay, base in zip(started, [0.5, 1.0, 2.0], strict=True)]
        assert all(0.8 <= ratio <= 1.2 for ratio in ratios), started
        assert len({round(ratio, 6) for ratio in ratios}) > 1, "no jitter"
        # In the background the tries go on, starting again from the first wait.
        background = await sleep.until(5)
        assert 0.4 <= background[3] <= 0.6 and 0.8 <= background[4] <= 1.2, background
    finally:
        await calls.close()
        await hardware.close()


async def test_a_socket_that_never_says_hello_is_closed_after_the_hello_timeout(
    make_server: ServerFactory,
) -> None:
    # The shipped default is the README's 10 s; a short one here shows it is the one applied.
    assert ServerLimits().hello_timeout == 10.0
    server = await make_server(limits={"hello_timeout": 0.3})
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url + "/v1/ws")
        frame = await ws.receive(timeout=10)  # it says nothing
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        error = json.loads(frame.data)
        assert error["type"] == "error"
        assert "no hello received in time" in error["message"]
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()
