"""Glass to glass: the frame counter kit A's fake camera draws (640x480, 30 fps), from the
moment the camera made that frame until the frame showing it is handed to kit B's display
HAL (callbox: decoded, composed onto the screen and shown), against two bare aiortc peers
sending the same camera (the decoded frame is handed over as it leaves aiortc's receiver).
Both use VP8, aiortc's default. Rounds take turns; the median is broken into stages."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from appliance.display.compositor import Compositor
from bench.call_setup import CameraTrack, fake_camera
from bench.common import Result, Target, median
from bench.probes import FrameTimes, now, probe_video_link, side_by_side
from hal.camera.base import VideoFormat
from hal.camera.fake import VIDEO_TIME_BASE, FakeCamera
from hal.camera.pattern import read_pattern
from hal.display.fake import FakeDisplay
from tests.kits import KitFactory

FORMAT = VideoFormat(640, 480, 30)
SCREEN = (1280, 720)
TARGET_MS = 80.0

STAGES = [
    ("capture (the fake camera draws its frame)", "due", "read"),
    ("encode and packetize (VP8)", "read", "sent"),
    ("network (loopback, SRTP; last packet)", "sent", "arrived"),
    ("jitter buffer (frame complete to decoder)", "arrived", "released"),
    ("decode", "released", "decoded"),
    ("compose: waiting for the next paint", "decoded", "paint"),
    ("compose: paint", "paint", "painted"),
    ("display hand-off", "painted", "shown"),
]
POINTS = ["due", "read", "sent", "arrived", "released", "decoded", "paint", "painted", "shown"]


@dataclass
class Frames:
    """Per frame counter, its time at each point."""

    at: dict[str, dict[int, float]] = field(default_factory=dict)

    def note(self, point: str, counter: int, when: float) -> None:
        self.at.setdefault(point, {}).setdefault(counter, when)

    def complete(self) -> list[list[float]]:
        counters = self.at.get("shown", {})
        out = []
        for counter in counters:
            times = [self.at.get(p, {}).get(counter) for p in POINTS]
            if all(t is not None for t in times):
                out.append([float(t) for t in times if t is not None])
        return out


def probe_camera(camera: FakeCamera, frames: Frames) -> None:
    """``due``: when the camera's pacer made the frame; ``read``: when it was handed over."""
    read = camera.read

    async def reading() -> Any:
        item = await read()
        at = now()
        pacer, fmt = camera._pacer, camera.format
        if pacer is not None and pacer._start is not None and fmt is not None:
            slot = round(item.pts * VIDEO_TIME_BASE * fmt.fps)
            frames.note("due", slot, pacer._start + slot * pacer.period)
            frames.note("read", slot, at)
        return item

    camera.read = reading  # type: ignore[method-assign]


class Decoded:
    """Frames decoded at the near end: their counter (from the pattern) and link times."""

    def __init__(self, frames: Frames, link: FrameTimes) -> None:
        self._frames = frames
        self._link = link
        self.counters: dict[int, int] = {}  # id(frame) -> counter, of frames still held
        self._held: list[Any] = []

    def decoded(self, frame: Any, at: float) -> int | None:
        info = read_pattern(frame)
        if info is None:
            return None
        counter = info.counter
        self._frames.note("decoded", counter, at)
        ts = self._link.raw_timestamp(frame.pts) if frame.pts is not None else None
        if ts is not None:
            for point, times in (
                ("sent", self._link.sent),
                ("arrived", self._link.arrived),
                ("released", self._link.released),
            ):
                if ts in times:
                    self._frames.note(point, counter, times[ts])
        self.counters[id(frame)] = counter
        self._held.append(frame)  # an id is the frame's only while the frame lives
        for gone in self._held[:-8]:
            self.counters.pop(id(gone), None)
        del self._held[:-8]
        return counter


# --- callbox ------------------------------------------------------------------------------


async def callbox_round(kits: KitFactory, n: int, seconds: float) -> Frames:
    frames, link = Frames(), FrameTimes()
    a = await kits(f"gtg-a{n}", video_format=FORMAT)
    b = await kits(f"gtg-b{n}", video_format=FORMAT)
    display = FakeDisplay(*SCREEN)
    compositor = Compositor(display, b.calls, size=SCREEN, fps=FORMAT.fps)
    await compositor.start()
    sink = b.view
    decoded = Decoded(frames, link)
    painted: list[tuple[int, float, float]] = []  # (counter, paint started, painted)

    class View:
        def show_video(self, uid: str, frame: Any) -> None:
            at = now()
            compositor.show_video(uid, frame)
            sink.show_video(uid, frame)
            if uid == a.uid:
                decoded.decoded(frame, at)

        def forget(self, uid: str) -> None:
            compositor.forget(uid)
            sink.forget(uid)

    b.calls.view = View()
    painter = compositor.painter
    paint = painter.paint

    def painting(items: Any, shown: dict[str, Any]) -> Any:
        started = time.monotonic()  # the loop's clock, from the compositor's thread
        regions = paint(items, shown)
        counters = [decoded.counters.get(id(f)) for f in shown.values()]
        counter = next((c for c in counters if c is not None), None)
        if counter is not None:
            painted.append((counter, started, time.monotonic()))
        return regions

    painter.paint = painting  # type: ignore[method-assign]
    show = display.show

    async def showing(frame: Any) -> None:
        at = now()
        if painted:
            counter, started, done = painted[-1]
            frames.note("paint", counter, started)
            frames.note("painted", counter, done)
            frames.note("shown", counter, at)
        await show(frame)

    display.show = showing  # type: ignore[method-assign]
    probe_camera(a.cameras[0], frames)
    session = f"glass-{n}"
    await a.join(session)
    await b.join(session)
    await b.wait_for_video_from(a.uid)
    assert a.calls.session is not None and b.calls.session is not None
    probe_video_link(a.calls.session.peers[b.uid].pc, b.calls.session.peers[a.uid].pc, link)
    await asyncio.sleep(seconds)
    await b.calls.end_session()
    await compositor.stop()
    return frames


# --- bare aiortc --------------------------------------------------------------------------


async def bare_round(seconds: float) -> Frames:
    frames, link = Frames(), FrameTimes()
    camera = fake_camera("a")
    probe_camera(camera, frames)
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    b.on("track", tracks.put_nowait)
    source = CameraTrack(camera, FORMAT)
    a.addTrack(source)
    b.addTransceiver("video", direction="recvonly")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    track = await asyncio.wait_for(tracks.get(), 10)
    decoded = Decoded(frames, link)
    probing = asyncio.Event()

    async def show() -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            at = now()
            if probing.is_set():
                counter = decoded.decoded(frame, at)
                if counter is not None:  # handed over as it comes: no composing
                    for point in ("paint", "painted", "shown"):
                        frames.note(point, counter, at)

    shower = asyncio.create_task(show())
    async with asyncio.timeout(10):
        while b.connectionState != "connected":
            await asyncio.sleep(0.01)
    probe_video_link(a, b, link)
    await asyncio.sleep(0.3)
    probing.set()
    await asyncio.sleep(seconds)
    shower.cancel()
    await source.close()
    await a.close()
    await b.close()
    return frames


# --- the table ----------------------------------------------------------------------------


def stage_medians(rounds: list[Frames]) -> tuple[list[float], dict[str, float]]:
    chains: list[list[float]] = []
    for frames in rounds:
        chains += frames.complete()
    totals = [(c[-1] - c[0]) * 1000 for c in chains]
    stages = {}
    for label, start, end in STAGES:
        i, j = POINTS.index(start), POINTS.index(end)
        stages[label] = median([(c[j] - c[i]) * 1000 for c in chains])
    return totals, stages


async def run(quick: bool) -> Result:
    rounds, seconds = (1, 1.0) if quick else (3, 5.0)
    ours, bare = await side_by_side(rounds, seconds, bare_round, callbox_round)
    our_totals, our_stages = stage_medians(ours)
    bare_totals, bare_stages = stage_medians(bare)
    ours_ms, bare_ms = median(our_totals), median(bare_totals)
    ratio = ours_ms / bare_ms if bare_ms else float("nan")
    rows: list[list[Any]] = [
        [label, our_stages[label], bare_stages[label]] for label, _, _ in STAGES
    ]
    rows.append(["**glass to glass, median of totals**", ours_ms, bare_ms])
    rows.append(["frames measured", len(our_totals), len(bare_totals)])
    largest = max(our_stages, key=lambda k: our_stages[k])
    over = max(our_stages, key=lambda k: our_stages[k] - bare_stages[k])
    return Result(
        "glass_to_glass",
        "Glass to glass: kit A's camera to kit B's display (640x480, 30 fps, VP8, loopback)",
        figures={
            "callbox_ms": ours_ms,
            "aiortc_ms": bare_ms,
            "ratio": ratio,
            "callbox_stages_ms": our_stages,
            "aiortc_stages_ms": bare_stages,
        },
        columns=["stage (median ms)", "callbox", "bare aiortc"],
        rows=rows,
        targets=[
            Target(
                f"at most {TARGET_MS:g} ms"
                + (
                    ""
                    if ours_ms <= TARGET_MS
                    else f"; the largest stage: {largest} ({our_stages[largest]:.0f} ms)"
                ),
                f"{ours_ms:.0f} ms",
                ours_ms <= TARGET_MS,
            ),
            Target(
                "at most 1.0 x bare aiortc"
                + (
                    ""
                    if ratio <= 1.0
                    else f"; the stage most over aiortc: {over} "
                    f"(+{our_stages[over] - bare_stages[over]:.0f} ms)"
                ),
                f"{ratio:.2f} x",
                ratio <= 1.0,
            ),
        ],
        notes=[
            "`python -m bench glass_to_glass`",
            f"{rounds} rounds of {seconds:g} s each, callbox and bare aiortc taking turns; "
            f"callbox kits in a two-way video call composing a {SCREEN[0]}x{SCREEN[1]} "
            "screen at 30 fps; bare aiortc sends one way and hands each decoded frame over "
            "as it comes (no screen to compose)",
            "a frame's time starts when the fake camera's pacer made it; a real sensor adds "
            "its exposure and read-out, a real screen its scan-out",
            "stage rows are medians of each stage over the frames: they need not add up to "
            "the median total",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
