"""Test kits: a session server and any number of kits on fake hardware in one process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from appliance.calls import Calls, CallSettingsBuilder, MediaOptions
from appliance.config import ServerConfig
from appliance.kit import KitController
from appliance.server import SessionServer
from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput, FakeMicrophone
from hal.audio.pcm import dominant_frequency, rms_dbfs
from hal.bluetooth.fake import FakeBluetooth
from hal.buttons.fake import FakeButtons
from hal.camera.base import VideoFormat
from hal.camera.fake import FakeCamera
from hal.camera.pattern import read_pattern
from hal.config import HalConfig
from hal.registry import Hardware, KitIdentity, build_hardware

SMALL_VIDEO = VideoFormat(320, 240, 15)  # cheap enough for three kits on two cores


class FrameSink:
    """A View that keeps the latest frame of every participant and counts them."""

    def __init__(self) -> None:
        self.latest: dict[str, av.VideoFrame] = {}
        self.counts: dict[str, int] = {}

    def show_video(self, uid: str, frame: Any) -> None:
        self.latest[uid] = frame
        self.counts[uid] = self.counts.get(uid, 0) + 1

    def forget(self, uid: str) -> None:
        self.latest.pop(uid, None)

    def counter(self, uid: str) -> int | None:
        """The frame counter the far kit's test pattern shows in its latest frame."""
        frame = self.latest.get(uid)
        info = read_pattern(frame) if frame is not None else None
        return info.counter if info else None


@dataclass(frozen=True)
class WireEvent:
    """A kit's event as the events WebSocket sends it: the tests read events as the seed's
    apps do, by their wire name and JSON keys."""

    event: str
    data: dict[str, Any]
    ts: float


@dataclass
class Kit:
    uid: str
    name: str
    tone_hz: float
    calls: Calls
    hardware: Hardware
    auth_token: str
    view: FrameSink
    controller: KitController | None = None
    events: list[WireEvent] = field(default_factory=list)
    _recorder: asyncio.Task[None] | None = None

    # --- hardware, typed ----------------------------------------------------------------

    def output(self, route: Route = Route.SPEAKER) -> FakeAudioOutput:
        return cast(FakeAudioOutput, self.hardware.outputs[route])

    @property
    def microphone(self) -> FakeMicrophone:
        return cast(FakeMicrophone, self.hardware.microphone)

    @property
    def cameras(self) -> list[FakeCamera]:
        return cast(list[FakeCamera], self.hardware.cameras)

    @property
    def bluetooth(self) -> FakeBluetooth:
        return cast(FakeBluetooth, self.hardware.bluetooth)

    @property
    def buttons(self) -> FakeButtons:
        return cast(FakeButtons, self.hardware.buttons)

    # --- calls --------------------------------------------------------------------------

    async def join(self, session_id: str, **settings: Any) -> None:
        token = await self.calls.generate_token(session_id, self.auth_token)
        builder = CallSettingsBuilder(None, token)
        for name, value in settings.items():
            getattr(builder, f"set_{name}")(value)
        await self.calls.start_session(token, builder.build())

    # --- events -------------------------------------------------------------------------

    def named(self, event: str) -> list[WireEvent]:
        return [e for e in self.events if e.event == event]

    async def wait_for(
        self,
        event: str,
        where: Callable[[dict[str, Any]], bool] = lambda data: True,
        timeout: float = 10.0,
        after: int = 0,
    ) -> WireEvent:
        """The first ``event`` (from index ``after`` on) whose data matches."""
        async with asyncio.timeout(timeout):
            while True:
                for record in self.events[after:]:
                    if record.event == event and where(record.data):
                        return record
                await asyncio.sleep(0.01)

    # --- media checks -------------------------------------------------------------------

    def heard(self, seconds: float = 0.3, route: Route = Route.SPEAKER) -> tuple[float, float]:
        """(dominant frequency, level dBFS) of what the route played recently."""
        pcm = self.output(route).recent(seconds)
        if len(pcm) == 0:
            return 0.0, -120.0
        return dominant_frequency(pcm), rms_dbfs(pcm)

    async def wait_to_hear(
        self, hz: float, route: Route = Route.SPEAKER, timeout: float = 10.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while True:
                freq, level = self.heard(0.2, route)
                if abs(freq - hz) < 15 and level > -40:
                    return
                await asyncio.sleep(0.05)

    async def wait_for_silence(self, route: Route = Route.SPEAKER, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.heard(0.2, route)[1] > -60:
                await asyncio.sleep(0.05)

    async def wait_for_video_from(self, uid: str, frames: int = 5, timeout: float = 10.0) -> None:
        """Until ``frames`` decoded frames from ``uid`` show an advancing pattern counter.
        A counter lower than the first seen starts the count again: the camera was opened
        again (a resumed or switched camera counts from 0), and the first seen was a frame
        from before, still on its way when the wait began."""
        async with asyncio.timeout(timeout):
            first = None
            while True:
                counter = self.view.counter(uid)
                if counter is not None:
                    first = counter if first is None or counter < first else first
                    if counter - first >= frames:
                        return
                await asyncio.sleep(0.03)


class KitFactory:
    def __init__(self, server: SessionServer, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.kits: list[Kit] = []
        # No tone lies on another pair's intermodulation product (2f1-f2, f1+f2-f3), so a
        # spectrum peak at a kit's tone means that kit is heard, not a codec artefact.
        # Rooms bigger than five and benchmarks making many kits go on with tones nobody
        # checks by spectrum, round and round below the fake microphone's 4 kHz limit.
        self._tones = itertools.chain(
            [400.0, 510.0, 650.0, 820.0, 1020.0],
            itertools.cycle([float(hz) for hz in range(1300, 4000, 170)]),
        )

    async def __call__(
        self,
        uid: str,
        *,
        controller: bool = False,
        video_codec: str | None = None,
        video_format: VideoFormat = SMALL_VIDEO,
        **hal: Any,
    ) -> Kit:
        name = uid.replace("-", " ").title()
        tone = next(self._tones)
        config = HalConfig.model_validate(
            {"backend": "fake", "audio": {"fake_tone_hz": tone}, **hal}
        )
        hardware = build_hardware(config, KitIdentity(uid, name))
        if hardware.bluetooth is not None:
            await hardware.bluetooth.start()
        token = await self.server.create_user(uid, name)
        view = FrameSink()
        calls = Calls(
            server_url=self.server.url,
            uid=uid,
            auth_token=token,
            hardware=hardware,
            options=MediaOptions(
                video_format=video_format,
                recordings_dir=self.tmp / uid / "recordings",
                video_codec=video_codec,
            ),
            view=view,
        )
        kit = Kit(uid, name, tone, calls, hardware, token, view)
        kit._recorder = asyncio.create_task(_record_events(kit))
        await calls.login()
        if controller:
            kit.controller = KitController(calls, token, buttons=hardware.buttons)
            kit.controller.start()
        await asyncio.sleep(0)
        self.kits.append(kit)
        return kit

    async def close(self) -> None:
        for kit in self.kits:
            if kit.controller is not None:
                await kit.controller.close()
            await kit.calls.close()
            if kit._recorder is not None:
                kit._recorder.cancel()
            await kit.hardware.close()


async def _record_events(kit: Kit) -> None:
    with kit.calls.events.subscribe() as queue:
        while True:
            kit.events.append(WireEvent(**(await queue.get()).to_json()))


@contextlib.asynccontextmanager
async def running_server(tmp: Path, **config: Any) -> AsyncIterator[SessionServer]:
    server = SessionServer(
        ServerConfig.model_validate({"listen": "127.0.0.1:0", **config}), tmp / "server.db"
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def free_port() -> int:
    """A TCP port nobody listens on now (for servers that must keep their port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def silence_ratio(pcm: np.ndarray[Any, Any]) -> float:
    return float(np.mean(np.abs(pcm) < 50)) if len(pcm) else 1.0
