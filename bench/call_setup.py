"""Call set-up, both kits cold: from the first start_session to the first remote video
frame decoded, two kits through the built-in session server on loopback, against two bare
aiortc peers exchanging SDP directly. Both clocks start with every camera closed. Both sides
send the same fake-camera frames and, both ways beside them, fake-microphone audio (a call
has both); runs alternate so both see the same machine load. The
ringing flow (place a call, answered at once) is timed to the caller's first frame too."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection

from appliance.calls import CallSettingsBuilder
from bench.common import Result, Target, median, percentile
from bench.mouth_to_ear import MicrophoneTrack
from hal.audio.fake import FakeMicrophone
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


async def wait_connected(pc: RTCPeerConnection) -> float:
    async with asyncio.timeout(20):
        while pc.connectionState != "connected":
            await asyncio.sleep(0.001)
    return time.perf_counter()


async def bare_aiortc_once() -> dict[str, float]:
    """Offer/answer in-process, no server: times (from the start) to the end of the SDP
    exchange, to the connection, to the first decoded frame."""
    a, b = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    readers: list[asyncio.Task[None]] = []

    def on_track(track: MediaStreamTrack, first_frame: bool) -> None:
        async def read() -> None:
            await track.recv()
            if first_frame and not first.done():
                first.set_result(time.perf_counter())
            while True:  # played or shown as it comes, as a kit's speaker and screen do
                await track.recv()

        readers.append(asyncio.create_task(read()))

    b.on("track", lambda track: on_track(track, track.kind == "video"))
    a.on("track", lambda track: on_track(track, False))
    a_track, b_track = CameraTrack(fake_camera("a")), CameraTrack(fake_camera("b"))
    microphones = [FakeMicrophone(400.0), FakeMicrophone(510.0)]
    start = time.perf_counter()
    # A call: audio both ways beside the video, as callbox's kits send and play it.
    a.addTrack(MicrophoneTrack(microphones[0]))
    b.addTrack(MicrophoneTrack(microphones[1]))
    a.addTrack(a_track)
    b.addTrack(b_track)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    negotiated = time.perf_counter()
    connected = await wait_connected(b)
    done = await asyncio.wait_for(first, 20)
    await a_track.close()
    await b_track.close()
    for reader in readers:
        reader.cancel()
    await a.close()
    await b.close()
    for microphone in microphones:
        await microphone.close()
    return {
        "negotiated": negotiated - start,
        "connected": connected - start,
        "first frame": done - start,
    }


async def callbox_once(kits: KitFactory, n: int) -> dict[str, float]:
    """Both kits idle and cold (cameras closed); the clock starts before the first
    ``start_session`` and stops at B's first decoded frame from A."""
    a = await kits(f"a{n}", video_format=FORMAT)
    b = await kits(f"b{n}", video_format=FORMAT)
    session = f"setup-{n}"
    settings = []
    for kit in (a, b):
        token = await kit.calls.generate_token(session, kit.auth_token)
        settings.append((token, CallSettingsBuilder(None, token).build()))
    assert not any(camera.is_open for camera in (*a.cameras, *b.cameras))
    opening = [timed_open(camera) for camera in (*a.cameras, *b.cameras)]
    start = time.perf_counter()
    await a.calls.start_session(*settings[0])
    a_started = time.perf_counter()
    await b.calls.start_session(*settings[1])
    negotiated = time.perf_counter()
    async with asyncio.timeout(20):
        while b.calls.session is None or a.uid not in b.calls.session.peers:
            await asyncio.sleep(0.001)
        peer = b.calls.session.peers[a.uid]
        while peer.pc is None or peer.pc.connectionState != "connected":
            await asyncio.sleep(0.001)
        connected = time.perf_counter()
        while a.uid not in b.view.counts:
            await asyncio.sleep(0.001)
    done = time.perf_counter()
    await b.calls.end_session()
    return {
        "cameras opening": sum(sum(spent) for spent in opening),
        "a started": a_started - start,
        "negotiated": negotiated - start,
        "connected": connected - start,
        "first frame": done - start,
    }


def timed_open(camera: FakeCamera) -> list[float]:
    """Seconds each ``open`` of this camera takes, appended as they finish."""
    spent: list[float] = []
    opener = camera.open

    async def open_timed(fmt: VideoFormat) -> None:
        started = time.perf_counter()
        try:
            await opener(fmt)
        finally:
            spent.append(time.perf_counter() - started)

    camera.open = open_timed  # type: ignore[method-assign]
    return spent


async def ring_once(kits: KitFactory, n: int) -> tuple[float, float]:
    """The ringing flow: kit A places a video call, kit B answers as soon as it rings
    (auto-answer); the clock stops when A shows B's first frame. Returns (place to
    first frame, answer to first frame)."""
    a = await kits(f"ring-a{n}", video_format=FORMAT, controller=True)
    b = await kits(f"ring-b{n}", video_format=FORMAT, controller=True)
    assert a.controller is not None and b.controller is not None
    b.controller.auto_answer = True
    start = time.perf_counter()
    await a.controller.place_call(b.uid, "video")
    accepted = await a.wait_for("onOutgoingCallAccepted", timeout=20)
    answered = time.perf_counter()
    async with asyncio.timeout(20):
        while b.uid not in a.view.counts:
            await asyncio.sleep(0.001)
    done = time.perf_counter()
    del accepted
    await a.controller.end()
    return done - start, done - answered


def stage_rows(
    ours: list[dict[str, float]], bare: list[dict[str, float]]
) -> list[tuple[str, float, float | str]]:
    """(stage, callbox median ms, aiortc median ms) from the marks both sides share."""

    def span(runs: list[dict[str, float]], start: str | None, end: str) -> float:
        return median([r[end] - (r[start] if start else 0.0) for r in runs]) * 1000

    return [
        (
            "offer and answer exchanged (callbox: both kits' start_session through the "
            "session server, cameras opened; aiortc: in-process)",
            span(ours, None, "negotiated"),
            span(bare, None, "negotiated"),
        ),
        (
            "of which: both kits' cameras opening, one kit's start_session after the other "
            "(aiortc opens its two at once, after connecting)",
            span(ours, None, "cameras opening"),
            "-",
        ),
        (
            "ICE and DTLS to connected",
            span(ours, "negotiated", "connected"),
            span(bare, "negotiated", "connected"),
        ),
        (
            "connected to the first frame decoded",
            span(ours, "connected", "first frame"),
            span(bare, "connected", "first frame"),
        ),
    ]


def worst(stages: list[tuple[str, float, float | str]]) -> str:
    def extra(row: tuple[str, float, float | str]) -> float:
        return row[1] - (row[2] if isinstance(row[2], float) else 0.0)

    label, ours, bare = max((row for row in stages if row[2] != "-"), key=extra)
    return f"the stage most over aiortc: {label} (+{extra((label, ours, bare)):.0f} ms)"


async def run(quick: bool) -> Result:
    rounds = 2 if quick else 15
    ours: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    rings: list[float] = []
    answers: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                for n in range(rounds):
                    bare.append(await bare_aiortc_once())
                    ours.append(await callbox_once(kits, n))
                    ring, answer = await ring_once(kits, n)
                    rings.append(ring)
                    answers.append(answer)
            finally:
                await kits.close()
    ours_ms = median([r["first frame"] for r in ours]) * 1000
    bare_ms = median([r["first frame"] for r in bare]) * 1000
    stages = stage_rows(ours, bare)
    ring_ms, answer_ms = median(rings) * 1000, median(answers) * 1000
    ratio = ours_ms / bare_ms
    result = Result(
        "call_setup",
        "Call set-up, both kits cold: start_session to the first remote video frame (640x480)",
        figures={
            "callbox_median_ms": ours_ms,
            "aiortc_median_ms": bare_ms,
            "ratio": ratio,
            "callbox_p90_ms": percentile([r["first frame"] for r in ours], 90) * 1000,
            "stages_ms": {row[0]: row[1:] for row in stages},
            "ring_to_first_frame_ms": ring_ms,
            "answer_to_first_frame_ms": answer_ms,
            "rounds": rounds,
        },
        columns=["", "callbox median ms", "bare aiortc median ms", "callbox p90 ms", "runs"],
        rows=[
            [
                "first remote frame (callbox: both kits' start_session, cameras opened "
                "inside, server, loopback; aiortc: both peers made, cameras and microphones "
                "opened, SDP exchanged in-process)",
                ours_ms,
                bare_ms,
                percentile([r["first frame"] for r in ours], 90) * 1000,
                rounds,
            ],
            ["ratio callbox / aiortc", ratio, "", "", ""],
            *[[f"stage: {label}", o, b, "", ""] for label, o, b in stages],
            [
                "callbox ringing flow: place_call to the caller's first frame of the callee",
                ring_ms,
                "-",
                percentile(rings, 90) * 1000,
                rounds,
            ],
            [
                "of which: call accepted to that first frame",
                answer_ms,
                "-",
                percentile(answers, 90) * 1000,
                rounds,
            ],
        ],
        targets=[
            Target("median under 300 ms", f"{ours_ms:.0f} ms", ours_ms < 300),
            Target(
                "at most 1.2 x bare aiortc" + ("" if ratio <= 1.2 else f"; {worst(stages)}"),
                f"{ratio:.2f} x",
                ratio <= 1.2,
            ),
        ],
        notes=[
            "`python -m bench call_setup`",
            "the clock starts with both sides idle and every camera closed: before kit A's "
            "start_session for callbox, before the peer connections are made for aiortc",
            "ringing: kit B answers as soon as it rings (auto-answer), so the ring's own "
            "wait for a person is not in the figure",
        ],
    )
    return result


if __name__ == "__main__":
    asyncio.run(run(False)).print()
