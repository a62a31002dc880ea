"""Call set-up: from start_session to the first remote video frame decoded, two kits
through the built-in session server on loopback, against two bare aiortc peers exchanging
SDP directly. Both sides send the same fake-camera frames; runs alternate so both see the
same machine load."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection

from appliance.calls import CallSettingsBuilder
from bench.common import Result, Target, median, percentile
from hal.camera.base import CameraInfo, VideoFormat
from hal.camera.fake import FakeCamera
from tests.kits import KitFactory, running_server

FORMAT = VideoFormat(640, 480, 30)


class CameraTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, camera: FakeCamera, fmt: VideoFormat = FORMAT) -> None:
        super().__init__()
        self._camera = camera
        self._format = fmt

    async def recv(self) -> Any:
        if not self._camera.is_open:
            await self._camera.open(self._format)
        return await self._camera.read()

    async def close(self) -> None:
        self.stop()
        await self._camera.close()


def fake_camera(name: str) -> FakeCamera:
    return FakeCamera(
        CameraInfo("fake0", "Fake camera 1"), index=0, colour=(200, 40, 40), kit_name=name
    )


async def bare_aiortc_once() -> float:
    """Offer/answer in-process, no server: time to the first decoded frame."""
    a, b = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    readers: list[asyncio.Task[None]] = []

    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            await track.recv()
            if not first.done():
                first.set_result(time.perf_counter())

        readers.append(asyncio.create_task(read()))

    b.on("track", on_track)
    a_track, b_track = CameraTrack(fake_camera("a")), CameraTrack(fake_camera("b"))
    start = time.perf_counter()
    a.addTrack(a_track)
    b.addTrack(b_track)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    done = await asyncio.wait_for(first, 20)
    await a_track.close()
    await b_track.close()
    for reader in readers:
        reader.cancel()
    await a.close()
    await b.close()
    return done - start


async def callbox_once(kits: KitFactory, n: int) -> float:
    a = await kits(f"a{n}", video_format=FORMAT)
    b = await kits(f"b{n}", video_format=FORMAT)
    session = f"setup-{n}"
    await a.join(session)
    token = await b.calls.generate_token(session, b.auth_token)
    settings = CallSettingsBuilder(None, token).build()
    start = time.perf_counter()
    await b.calls.start_session(token, settings)
    async with asyncio.timeout(20):
        while a.uid not in b.view.counts:
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await b.calls.end_session()
    await a.calls.close()
    await b.calls.close()
    return elapsed


async def run(quick: bool) -> Result:
    rounds = 2 if quick else 15
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                for n in range(rounds):
                    bare.append(await bare_aiortc_once())
                    ours.append(await callbox_once(kits, n))
            finally:
                await kits.close()
    ours_ms, bare_ms = median(ours) * 1000, median(bare) * 1000
    ratio = ours_ms / bare_ms
    result = Result(
        "call_setup",
        "Call set-up: start_session to first remote video frame (640x480)",
        figures={
            "callbox_median_ms": ours_ms,
            "aiortc_median_ms": bare_ms,
            "ratio": ratio,
            "callbox_p90_ms": percentile(ours, 90) * 1000,
            "rounds": rounds,
        },
        columns=["", "median ms", "p90 ms", "runs"],
        rows=[
            [
                "callbox (2 kits, session server, loopback)",
                ours_ms,
                percentile(ours, 90) * 1000,
                rounds,
            ],
            [
                "bare aiortc (SDP exchanged in-process)",
                bare_ms,
                percentile(bare, 90) * 1000,
                rounds,
            ],
            ["ratio callbox / aiortc", ratio, "", ""],
        ],
        targets=[
            Target("median under 300 ms", f"{ours_ms:.0f} ms", ours_ms < 300),
            Target("at most 1.5 x bare aiortc", f"{ratio:.2f} x", ratio <= 1.5),
        ],
    )
    return result


if __name__ == "__main__":
    asyncio.run(run(False)).print()
