"""Soak: one two-kit call for 30 minutes (``make soak``; ``run(quick=True)`` for a short
smoke), watching the process's memory and the audio latency from one kit's microphone to
the other's speaker.

Latency is measured with markers: every few seconds kit A's microphone goes silent for
200 ms and then plays a 100 ms burst at 1500 Hz. A marker's capture time is when the
microphone delivered its first block; its arrival is when kit B's speaker was handed the
first sample above -30 dBFS after the silence (sample-exact within the block). The drift is
the median latency of the last markers less that of the first. Meanwhile B mutes and
unmutes, and pauses and resumes its camera, once a minute, so the call's event paths run
too; and every four minutes the event loop is held up for 300 ms, as an SD card or a
garbage collection can, and the delay that leaves in the audio path must not stay.

RSS is read from /proc every few seconds; growth is counted from the end of the warm-up
(the first five minutes of the call), when codecs, buffers and caches have settled.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from appliance.calls import AudioMode
from bench.common import Result, Target, machine
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm
from hal.audio.fake import FakeAudioOutput, FakeMicrophone
from hal.audio.pcm import tone
from hal.camera.base import VideoFormat
from tests.kits import Kit, KitFactory, running_server

VIDEO = VideoFormat(640, 480, 15)
MARKER_HZ = 1500.0
SILENT_BLOCKS = 10  # 200 ms of silence before each marker
MARKER_BLOCKS = 5  # 100 ms burst
ONSET = int(32768 * 10 ** (-30 / 20))  # -30 dBFS
SILENT = int(32768 * 10 ** (-50 / 20))  # below -50 dBFS counts as silence

# What the soak promises (README, "Reliability"): the bound on memory growth after the
# warm-up over the 30 minutes, and on the latency drift.
RSS_GROWTH_LIMIT_MIB = 40.0
DRIFT_LIMIT_MS = 20.0
EDGE_MARKERS = 5  # markers averaged at each end for the drift
SOAK_RESULTS = Path(__file__).with_name("SOAK.md")
DEFAULT_EXECUTOR_PREFIX = "asyncio_"  # asyncio names its default executor's workers so


@dataclass(frozen=True)
class Plan:
    seconds: float
    warm_up: float
    marker_period: float
    sample_seconds: float
    toggle_every: float  # B mutes/unmutes and pauses/resumes its camera this often
    hiccup_every: float  # the event loop is held up for HICCUP_SECONDS this often


FULL = Plan(
    seconds=30 * 60,
    warm_up=5 * 60,
    marker_period=5,
    sample_seconds=10,
    toggle_every=60,
    hiccup_every=4 * 60,
)
QUICK = Plan(
    seconds=16, warm_up=6, marker_period=2, sample_seconds=2, toggle_every=5, hiccup_every=7
)
# A Pi's SD card or a garbage collection can hold the loop up: the delay it leaves in the
# audio buffers must not stay.
HICCUP_SECONDS = 0.3


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class MarkerMicrophone:
    """Wraps kit A's fake microphone: on ``mark()``, the next blocks are silence and then
    the marker burst; ``sent`` keeps each marker's capture time (loop clock)."""

    def __init__(self, microphone: FakeMicrophone) -> None:
        self._inner = microphone
        self._script: list[Pcm] = []
        self.sent: list[float] = []
        self._burst = list(tone(MARKER_HZ, level_dbfs=-10, frames=MARKER_BLOCKS))

    @property
    def xruns(self) -> int:
        return self._inner.xruns

    def mark(self) -> None:
        if not self._script:
            silence = [np.zeros(FRAME_SAMPLES, np.int16)] * SILENT_BLOCKS
            self._script = [*silence, *self._burst]

    async def read(self) -> Pcm:
        pcm = await self._inner.read()
        if self._script:
            pcm = self._script.pop(0)
            if len(self._script) == MARKER_BLOCKS - 1:  # the burst's first block
                # The block was captured over the 20 ms before it was delivered.
                self.sent.append(asyncio.get_running_loop().time() - FRAME_SAMPLES / SAMPLE_RATE)
        return pcm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class MarkerListener:
    """Wraps kit B's speaker: finds each marker's onset in what it is handed."""

    output: FakeAudioOutput
    received: list[float] = field(default_factory=list)
    _silent_blocks: int = 0

    def install(self) -> None:
        write = self.output.write

        async def listening(pcm: Pcm) -> None:
            self._listen(pcm, asyncio.get_running_loop().time())
            await write(pcm)

        self.output.write = listening  # type: ignore[method-assign]

    def _listen(self, pcm: Pcm, at: float) -> None:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET)
        if self._silent_blocks >= SILENT_BLOCKS // 2 and len(loud):
            self.received.append(at + loud[0] / SAMPLE_RATE)
        quiet = np.abs(pcm.astype(np.int32)).max(initial=0) < SILENT
        self._silent_blocks = self._silent_blocks + 1 if quiet else 0


def pair_up(sent: list[float], received: list[float], period: float) -> list[float]:
    """Latency (s) of each sent marker that arrived before the next was sent."""
    latencies = []
    for at in sent:
        arrivals = [r for r in received if at < r < at + period * 0.8]
        if arrivals:
            latencies.append(float(arrivals[0] - at))
    return latencies


@dataclass
class Sample:
    minute: float
    rss: float
    latency_ms: float
    video_fps: float
    audio_ratio: float  # samples B's speaker was handed / wall time
    held: Held


@dataclass(frozen=True)
class Held:
    """What the process holds: a task, thread or file descriptor left behind by each
    mute, pause or hiccup shows here long before it shows in RSS."""

    tasks: int
    threads: int  # outside the event loop's default executor
    pool_threads: int  # the default executor's workers, grown on demand up to its bound
    fds: int

    @staticmethod
    def now() -> Held:
        fds = len(os.listdir("/proc/self/fd"))
        # aiortc's codecs run in the default executor, which starts another worker whenever
        # all are busy: a loaded machine grows the pool without anything leaking.
        names = [thread.name for thread in threading.enumerate()]
        pool = sum(1 for name in names if name.startswith(DEFAULT_EXECUTOR_PREFIX))
        return Held(len(asyncio.all_tasks()), len(names) - pool, pool, fds)


async def soak(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server:
            kits = KitFactory(server, Path(tmp))
            try:
                a = await kits("room-a", video_format=VIDEO)
                b = await kits("room-b", video_format=VIDEO)
                return await call(a, b, plan)
            finally:
                await kits.close()


async def call(a: Kit, b: Kit, plan: Plan) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    microphone = MarkerMicrophone(a.microphone)
    a.hardware.microphone = cast(FakeMicrophone, microphone)
    listener = MarkerListener(b.output(AudioMode.SPEAKER))
    listener.install()
    await a.join("soak")
    await b.join("soak")
    await b.wait_for_video_from("room-a")
    await b.wait_to_hear(a.tone_hz)

    started = loop.time()
    samples: list[Sample] = []
    next_marker = started + 1.0
    next_sample = started
    next_toggle = started + plan.toggle_every
    next_hiccup = started + plan.hiccup_every
    toggles = hiccups = 0
    frames0, played0, at0 = b.view.counts.get("room-a", 0), listener.output.total_samples, started
    while (now := loop.time()) < started + plan.seconds:
        if now >= next_marker:
            microphone.mark()
            next_marker += plan.marker_period
        if now >= next_hiccup:
            time.sleep(HICCUP_SECONDS)  # noqa: ASYNC251 (the point: the whole loop stalls)
            hiccups += 1
            next_hiccup += plan.hiccup_every
        if now >= next_toggle:
            toggles += 1
            await b.calls.mute_audio(toggles % 2 == 1)
            await b.calls.pause_video(toggles % 2 == 1)
            next_toggle += plan.toggle_every
        if now >= next_sample:
            frames, played = b.view.counts.get("room-a", 0), listener.output.total_samples
            elapsed = max(now - at0, 1e-9)
            recent = pair_up(
                [s for s in microphone.sent if s >= now - plan.sample_seconds],
                listener.received,
                plan.marker_period,
            )
            samples.append(
                Sample(
                    minute=(now - started) / 60,
                    rss=rss_mib(),
                    latency_ms=statistics.median(recent) * 1000 if recent else float("nan"),
                    video_fps=(frames - frames0) / elapsed if samples else float("nan"),
                    audio_ratio=(played - played0) / SAMPLE_RATE / elapsed if samples else 1.0,
                    held=Held.now(),
                )
            )
            frames0, played0, at0 = frames, played, now
            next_sample += plan.sample_seconds
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the last marker lands
    sent = [s for s in microphone.sent if s < loop.time() - plan.marker_period * 0.8]
    latencies = pair_up(sent, listener.received, plan.marker_period)
    after_warm_up = [s for s in samples if s.minute * 60 >= plan.warm_up]
    still_in_call = a.calls.session is not None and b.calls.session is not None
    await b.calls.end_session()
    return {
        "samples": samples,
        "sent": len(sent),
        "latencies": latencies,
        "rss_warm": after_warm_up[0].rss if after_warm_up else float("nan"),
        "rss_end": samples[-1].rss,
        "held_warm": after_warm_up[0].held if after_warm_up else None,
        "held_end": samples[-1].held,
        "held": [s.held for s in samples],
        "rss_peak": max(s.rss for s in after_warm_up) if after_warm_up else float("nan"),
        "toggles": toggles,
        "hiccups": hiccups,
        "in_call": still_in_call,
    }


async def run(quick: bool) -> Result:
    plan = QUICK if quick else FULL
    seconds = plan.seconds
    found = await soak(plan)
    latencies_ms = [x * 1000 for x in found["latencies"]]
    edge = min(EDGE_MARKERS, max(1, len(latencies_ms) // 4))
    first = statistics.median(latencies_ms[:edge]) if latencies_ms else float("nan")
    last = statistics.median(latencies_ms[-edge:]) if latencies_ms else float("nan")
    drift = last - first
    growth = found["rss_end"] - found["rss_warm"]
    samples: list[Sample] = found["samples"]
    every = 1 if quick else 6  # a row a minute in the full run
    targets = []
    if not quick:
        targets = [
            Target(
                f"RSS growth after the {plan.warm_up / 60:g}-minute warm-up, over the rest of the "
                f"call, within {RSS_GROWTH_LIMIT_MIB:g} MiB",
                f"{growth:.1f} MiB ({found['rss_warm']:.0f} to {found['rss_end']:.0f})",
                growth <= RSS_GROWTH_LIMIT_MIB,
            ),
            Target(
                f"audio latency drift (median of the last {edge} markers less the first "
                f"{edge}) within {DRIFT_LIMIT_MS:g} ms",
                f"{drift:+.1f} ms ({first:.1f} to {last:.1f})",
                abs(drift) <= DRIFT_LIMIT_MS,
            ),
            Target(
                "every marker heard",
                f"{len(latencies_ms)} of {found['sent']}",
                len(latencies_ms) == found["sent"],
            ),
        ]
    return Result(
        "soak",
        f"Soak: a two-kit call for {seconds / 60:.0f} minutes"
        if not quick
        else f"Soak (quick): a two-kit call for {seconds:.0f} s",
        figures={
            "seconds": seconds,
            "markers_sent": found["sent"],
            "markers_heard": len(latencies_ms),
            "latency_first_ms": first,
            "latency_last_ms": last,
            "latency_drift_ms": drift,
            "latency_ms": latencies_ms,
            "rss_after_warm_up_mib": found["rss_warm"],
            "rss_end_mib": found["rss_end"],
            "rss_peak_mib": found["rss_peak"],
            "rss_growth_mib": growth,
            "toggles": found["toggles"],
            "hiccups": found["hiccups"],
            "in_call_at_the_end": found["in_call"],
            "held_after_warm_up": found["held_warm"],
            "held_at_the_end": found["held_end"],
            "held": found["held"],
        },
        columns=["minute", "RSS MiB", "A->B latency ms", "video fps at B", "audio played/wall"],
        rows=[
            [round(s.minute, 1), s.rss, s.latency_ms, s.video_fps, s.audio_ratio]
            for s in samples[::every]
        ],
        targets=targets,
        notes=[
            f"{VIDEO.width}x{VIDEO.height} at {VIDEO.fps} fps both ways, fake hardware, both "
            "kits and the session server in one process (RSS is all of it)",
            "latency: kit A's microphone block to kit B's speaker write (Opus both ways, the "
            "jitter buffer as deep as the jitter it measures, the 20 ms mixer); a real card "
            "adds its own buffer",
        ],
    )


def main() -> None:
    """``make soak``: the full run, printed and written to bench/SOAK.md."""
    result = asyncio.run(run(False))
    result.print()
    header = f"# Soak\n\nMeasured with `make soak` on {machine()}, {time.strftime('%Y-%m-%d')}.\n\n"
    SOAK_RESULTS.write_text(header + result.markdown())


if __name__ == "__main__":
    main()
