"""Compositor: milliseconds per 1080p frame with 1, 4 and 9 live tiles, against ffmpeg's own
filter graph (scale each input, xstack them, pad to the screen, convert to RGB) run through
PyAV in the same process on the same inputs and layout; and what a static screen costs.

Both sides get a new 640x480 yuv420p camera frame for every tile on every output frame and
produce a 1920x1080 RGB picture ready for the display (ffmpeg's output is viewed in place,
not copied). Both scale with one thread. callbox also draws the name labels and the control
bar over the tiles, which the ffmpeg graph does not.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import av.filter

from appliance.calls.settings import DisplayMode
from appliance.display import theme
from appliance.display.compositor import Compositor
from appliance.display.layout import Layout, compute_layout
from appliance.display.painter import Painter, rgb_view
from appliance.display.render import SpriteCache
from appliance.display.scene import (
    LOCAL_VIDEO,
    Control,
    ControlBar,
    HomeInfo,
    Person,
    Scene,
    Screen,
)
from bench.common import Result, Target, cpu_and_wall, median, percentile
from hal.camera.base import VideoFormat
from hal.camera.pattern import KIT_PALETTE, TestPattern
from tests.kits import KitFactory, running_server

SIZE = (1920, 1080)
CAMERA = (640, 480)
TILES = (1, 4, 9)
DISTINCT_FRAMES = 8  # per input, cycled: every output frame gets new frame objects


def _scene(tiles: int) -> Scene:
    people = tuple(
        Person(
            uid=f"kit-{i}",
            name=f"Kit {i}",
            video=LOCAL_VIDEO if i == 0 else f"kit-{i}",
            is_local=i == 0,
            video_aspect=CAMERA[0] / CAMERA[1],
        )
        for i in range(tiles)
    )
    return Scene(
        screen=Screen.CALL,
        people=people,
        mode=DisplayMode.default,
        controls=ControlBar(buttons=tuple(Control), audio_mode="SPEAKER"),
    )


def _inputs(layout: Layout) -> dict[str, list[av.VideoFrame]]:
    out = {}
    for index, tile in enumerate(layout.tiles):
        pattern = TestPattern(*CAMERA, colour=KIT_PALETTE[index], label=tile.uid, camera_index=0)
        out[tile.video] = [pattern.frame(n) for n in range(DISTINCT_FRAMES)]
    return out


class _Callbox:
    def __init__(self, layout: Layout, inputs: dict[str, list[av.VideoFrame]]) -> None:
        self.layout, self.inputs = layout, inputs
        self.painter = Painter(SIZE, SpriteCache(lambda url: None))
        self.painter.paint(layout.items, {k: v[-1] for k, v in inputs.items()})  # sprites made

    def frame(self, n: int) -> None:
        frames = {key: frames[n % DISTINCT_FRAMES] for key, frames in self.inputs.items()}
        regions = self.painter.paint(self.layout.items, frames)
        assert len(regions) >= len(frames)


class _Ffmpeg:
    def __init__(
        self, layout: Layout, inputs: dict[str, list[av.VideoFrame]], rgb_first: bool
    ) -> None:
        self.graph, self.sources, self.sink = _ffmpeg_graph(layout, rgb_first)
        self.streams = [inputs[tile.video] for tile in layout.tiles]
        self.pts = 0
        for n in range(2):  # to settle
            self.frame(n)

    def frame(self, n: int) -> None:
        self.pts += 1
        for source, frames in zip(self.sources, self.streams, strict=True):
            frame = frames[n % DISTINCT_FRAMES]
            frame.pts, frame.time_base = self.pts, Fraction(1, 30)
            source.push(frame)
        picture = rgb_view(self.sink.pull())  # in place, as the display would take it
        assert picture.shape == (SIZE[1], SIZE[0], 3)


def _race(runners: list[_Callbox | _Ffmpeg], count: int) -> list[tuple[list[float], list[float]]]:
    """(wall ms, CPU ms) per frame for each runner; they take turns frame by frame, so a
    busy machine slows them alike."""
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in runners]
    for n in range(count):
        for runner, (wall, cpu) in zip(runners, out, strict=True):
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            runner.frame(n)
            cpu.append((time.thread_time() - cpu0) * 1000)
            wall.append((time.perf_counter() - wall0) * 1000)
    return out


def _ffmpeg_graph(layout: Layout, rgb_first: bool) -> tuple[av.filter.Graph, list, object]:
    graph = av.filter.Graph()
    graph.threads = 1
    sources = [
        graph.add_buffer(
            width=CAMERA[0], height=CAMERA[1], format="yuv420p", time_base=Fraction(1, 30)
        )
        for _ in layout.tiles
    ]
    scaled = []
    for source, tile in zip(sources, layout.tiles, strict=True):
        scale = graph.add("scale", f"{tile.rect.w}:{tile.rect.h}:flags=bilinear")
        source.link_to(scale)
        if rgb_first:
            to_rgb = graph.add("format", "rgb24")
            scale.link_to(to_rgb)
            scale = to_rgb
        scaled.append(scale)
    colour = "0x{:02x}{:02x}{:02x}".format(*theme.CALL_BG)
    if len(scaled) == 1:
        stacked = scaled[0]
        tile = layout.tiles[0].rect
        pad_args = f"{SIZE[0]}:{SIZE[1]}:{tile.x}:{tile.y}:color={colour}"
    else:
        positions = "|".join(f"{t.rect.x}_{t.rect.y}" for t in layout.tiles)
        stacked = graph.add("xstack", f"inputs={len(scaled)}:layout={positions}:fill={colour}")
        for index, node in enumerate(scaled):
            node.link_to(stacked, 0, index)
        pad_args = f"{SIZE[0]}:{SIZE[1]}:0:0:color={colour}"
    pad = graph.add("pad", pad_args)
    stacked.link_to(pad)
    last = pad
    if not rgb_first:
        last = graph.add("format", "rgb24")
        pad.link_to(last)
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    return graph, sources, sink


async def _static_costs(seconds: float) -> dict[str, float]:
    """CPU the compositor adds to the process while it shows an unchanging home screen
    (against the same process without it), and repaints while a call's screen stands still
    (both kits' video paused and microphones muted)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                a = await kits("room-a", display={"width": SIZE[0], "height": SIZE[1]})
                b = await kits("room-b")
                await asyncio.sleep(0.5)
                with cpu_and_wall() as baseline:  # the same process, no screen
                    await asyncio.sleep(seconds)
                screen = Compositor(a.hardware.display, a.calls)
                a.calls.view = screen
                await screen.start()
                screen.set_home(HomeInfo("Room A", "http://127.0.0.1:8080", True))
                await asyncio.sleep(0.5)
                with cpu_and_wall() as home:
                    frames_before = screen.painter.frames
                    await asyncio.sleep(seconds)
                out["home_cpu_ms_per_s"] = (
                    home["cpu"] / home["wall"] - baseline["cpu"] / baseline["wall"]
                ) * 1000
                out["home_repaints"] = screen.painter.frames - frames_before
                # Nobody's video and nobody speaking: nothing on the screen changes.
                await a.join("still", start_video_muted=True, start_audio_muted=True)
                await b.join("still", start_video_muted=True, start_audio_muted=True)
                await asyncio.sleep(1.5)
                before, pixels = screen.painter.frames, screen.painter.pixels_painted
                await asyncio.sleep(seconds)
                out["call_repaints"] = screen.painter.frames - before
                out["call_pixels_per_s"] = (screen.painter.pixels_painted - pixels) / seconds
                await screen.stop()
            finally:
                await kits.close()
    return out


async def _live_call(seconds: float, video: VideoFormat) -> dict[str, float]:
    """Three kits in a call: what painting the 1080p screen costs."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                a = await kits(
                    "room-a", video_format=video, display={"width": 1920, "height": 1080}
                )
                others = [await kits(uid, video_format=video) for uid in ("room-b", "room-c")]
                screen = Compositor(a.hardware.display, a.calls)
                a.calls.view = screen
                await screen.start()
                for kit in (a, *others):
                    await kit.join("live")
                await asyncio.sleep(3)
                painter = screen.painter
                frames, busy = painter.frames, painter.cpu_seconds
                await asyncio.sleep(seconds)
                out = {
                    "live_fps": (painter.frames - frames) / seconds,
                    "live_paint_cpu_ms_per_s": (painter.cpu_seconds - busy) / seconds * 1000,
                }
                await screen.stop()
            finally:
                await kits.close()
    return out


async def run(quick: bool) -> Result:
    count = 10 if quick else 200
    rows = []
    figures: dict[str, float] = {}
    for tiles in TILES:
        layout = compute_layout(_scene(tiles), SIZE)
        inputs = _inputs(layout)
        runners = [
            _Callbox(layout, inputs),
            _Ffmpeg(layout, inputs, rgb_first=False),
            _Ffmpeg(layout, inputs, rgb_first=True),
        ]
        (ours, ours_cpu), (yuv, yuv_cpu), (rgb, rgb_cpu) = _race(runners, count)
        ffmpeg, ffmpeg_cpu = (yuv, yuv_cpu) if median(yuv) <= median(rgb) else (rgb, rgb_cpu)
        figures[f"callbox_ms_{tiles}"] = median(ours)
        figures[f"ffmpeg_ms_{tiles}"] = median(ffmpeg)
        figures[f"callbox_cpu_ms_{tiles}"] = median(ours_cpu)
        figures[f"ffmpeg_cpu_ms_{tiles}"] = median(ffmpeg_cpu)
        rows.append(
            [
                tiles,
                median(ours),
                percentile(ours, 90),
                median(ours_cpu),
                median(yuv),
                median(rgb),
                median(ffmpeg_cpu),
                median(ffmpeg) / median(ours),
            ]
        )
    static = await _static_costs(0.5 if quick else 5.0)
    figures.update(static)
    video = VideoFormat(320, 240, 15) if quick else VideoFormat(640, 480, 30)
    live = await _live_call(1.0 if quick else 10.0, video)
    figures.update(live)
    targets = [
        Target(
            f"{tiles} tiles: callbox at or below ffmpeg ({kind})",
            f"{figures[f'callbox_{key}_{tiles}']:.2f} vs {figures[f'ffmpeg_{key}_{tiles}']:.2f} ms",
            figures[f"callbox_{key}_{tiles}"] <= figures[f"ffmpeg_{key}_{tiles}"],
        )
        for tiles in (4, 9)
        for kind, key in (("wall", "ms"), ("CPU", "cpu_ms"))
    ]
    targets.append(
        Target(
            "static screen: no repaints",
            f"{static['home_repaints']:.0f} at home, {static['call_repaints']:.0f} in a still call",
            static["home_repaints"] == 0 and static["call_repaints"] == 0,
        )
    )
    targets.append(
        Target(
            "static home screen near zero CPU (< 2 ms CPU per second)",
            f"{static['home_cpu_ms_per_s']:.1f} ms/s",
            static["home_cpu_ms_per_s"] < 2,
        )
    )
    return Result(
        "compositor",
        "Compositor: ms per 1920x1080 RGB frame, every tile live, against ffmpeg's filter graph",
        figures=figures,
        columns=[
            "live tiles",
            "callbox median ms",
            "callbox p90 ms",
            "callbox CPU ms",
            "ffmpeg scale+xstack+pad, then rgb24 ms",
            "ffmpeg rgb24 per tile, then xstack ms",
            "ffmpeg (best) CPU ms",
            "ffmpeg best / callbox",
        ],
        rows=rows,
        targets=targets,
        notes=[
            f"{count} frames per case, callbox and both ffmpeg graphs taking turns frame by "
            f"frame; inputs {CAMERA[0]}x{CAMERA[1]} yuv420p test patterns; one scaling thread "
            "on both sides; CPU is the calling thread's CPU time",
            "callbox also blends a name label per tile and a seven-button control bar",
            f"static: the home screen adds {static['home_cpu_ms_per_s']:.2f} ms CPU per second "
            f"to the process; still call: {static['call_repaints']:.0f} repaints, "
            f"{static['call_pixels_per_s']:.0f} pixels/s",
            f"live call of three kits ({video.width}x{video.height} at {video.fps} fps each, "
            "over real WebRTC): the screen "
            f"painted {live['live_fps']:.1f} frames/s for {live['live_paint_cpu_ms_per_s']:.1f} ms "
            "of CPU per second",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
