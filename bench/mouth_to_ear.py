"""Mouth to ear: a marker (200 ms of silence, then a burst, sample-exact) into kit A's fake
microphone until its first sample leaves kit B's fake speaker, on loopback, for two callbox
kits in an audio call and for two bare aiortc peers sending the same microphone (Opus 20 ms,
aiortc's own jitter buffer, the decoded audio played as it comes). Rounds take turns so both
see the same machine load; the median is broken into stages (``bench.probes``)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any, cast

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from appliance.calls import AudioMode
from appliance.media.local import pcm_of
from bench.common import Result, Target, median
from bench.probes import PcmOnsets, Timeline, now, onset_time, probe_audio_link, side_by_side
from bench.soak import MarkerMicrophone
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm
from hal.audio.fake import FakeMicrophone
from tests.kits import Kit, KitFactory

PERIOD = FRAME_SAMPLES / SAMPLE_RATE
MARKER_EVERY = 0.5  # s: 200 ms of silence, a 100 ms burst, then the microphone's tone
TARGET_MS = 60.0
WINDOW = 1.0  # s: a marker not heard within this is lost
SETTLE = 2.0  # s of call before the first marker, on both sides

# (row label, start point, end point) in the order the audio passes them.
STAGES = [
    ("capture period (the marker's block fills)", "mouth", "captured"),
    ("room-audio stage (echo canceller, noise suppression)", "captured", "pushed"),
    ("encode and packetize (Opus 20 ms)", "pushed", "sent"),
    ("network (loopback, SRTP)", "sent", "arrived"),
    ("jitter buffer: RTP packets", "arrived", "released"),
    ("decode", "released", "decoded"),
    ("Opus look-ahead (onset later in its decoded block)", "decoded", "decoded onset"),
    ("jitter buffer: PCM, to the mixer's tick", "decoded onset", "mixed onset"),
    ("mixer (mix, limit, hand to the output)", "mixed onset", "ear"),
]
POINTS = ["mouth", "captured", "pushed", "sent", "arrived", "released", "decoded"]
POINTS += ["decoded onset", "mixed onset", "ear"]


class ProbedMicrophone(MarkerMicrophone):
    """The marker microphone, noting each marker's first sample (``mouth``) and when its
    block was delivered (``captured``)."""

    def __init__(self, microphone: FakeMicrophone, timeline: Timeline) -> None:
        super().__init__(microphone)
        self._timeline = timeline

    async def read(self) -> Pcm:
        count = len(self.sent)
        pcm = await super().read()
        if len(self.sent) > count:
            self._timeline.note("mouth", self.sent[-1])
            self._timeline.note("captured", self.sent[-1] + PERIOD)
        return pcm


async def mark_every(microphone: MarkerMicrophone, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        microphone.mark()
        await asyncio.sleep(MARKER_EVERY)
    await asyncio.sleep(WINDOW)  # the last marker lands


# --- callbox ------------------------------------------------------------------------------


def probe_callbox(a: Kit, b: Kit, timeline: Timeline) -> None:
    a_session, b_session = a.calls.session, b.calls.session
    assert a_session is not None and b_session is not None
    # The microphone's frames as the pump hands them on: encoded once for every Opus peer
    # (one trip to the encoding thread per batch), then packed by aiortc's sender.
    local = a_session.local
    send_frames = local._send_frames
    pushed = PcmOnsets()

    async def sending(frames: list[Any]) -> None:
        for frame in frames:
            index = pushed.feed(pcm_of(frame))
            if index is not None:
                timeline.note("pushed", now())
                # Not a time: where the burst begins in the processed block (a noise
                # suppressor ramps a sound in after silence), in seconds.
                timeline.note("processed onset", index / SAMPLE_RATE)
        await send_frames(frames)

    local._send_frames = sending  # type: ignore[method-assign]
    probe_audio_link(a_session.peers[b.uid].pc, b_session.peers[a.uid].pc, timeline)

    buffer = b_session.mixer._sources[a.uid]
    put, take = buffer.put, buffer.take
    decoded, taken = PcmOnsets(), PcmOnsets()

    def putting(pcm: Pcm, *args: Any) -> None:
        at = now()
        index = decoded.feed(pcm)
        if index is not None:
            timeline.note("decoded", at)
            timeline.note("decoded onset", onset_time(at, index))
        put(pcm, *args)

    def taking(n: int) -> Pcm | None:
        pcm = take(n)
        if pcm is not None:
            index = taken.feed(pcm)
            if index is not None:
                timeline.note("mixed onset", onset_time(now(), index))
        return pcm

    buffer.put = putting  # type: ignore[method-assign]
    buffer.take = taking  # type: ignore[method-assign]

    output = b.output(AudioMode.SPEAKER)
    write = output.write
    heard = PcmOnsets()

    async def writing(pcm: Pcm) -> None:
        index = heard.feed(pcm)
        if index is not None:
            timeline.note("ear", onset_time(now(), index))
        await write(pcm)

    output.write = writing  # type: ignore[method-assign]


async def callbox_round(kits: KitFactory, n: int, seconds: float) -> Timeline:
    timeline = Timeline()
    a = await kits(f"mte-a{n}")
    b = await kits(f"mte-b{n}")
    microphone = ProbedMicrophone(a.microphone, timeline)
    a.hardware.microphone = cast(FakeMicrophone, microphone)
    session = f"mouth-to-ear-{n}"
    await a.join(session, is_audio_only=True)
    await b.join(session, is_audio_only=True)
    await b.wait_to_hear(a.tone_hz)
    probe_callbox(a, b, timeline)
    await asyncio.sleep(SETTLE)
    await mark_every(microphone, seconds)
    await b.calls.end_session()  # a two-party call ends for A too
    return timeline


# --- bare aiortc --------------------------------------------------------------------------


class MicrophoneTrack(MediaStreamTrack):
    """A fake microphone as an aiortc track: 20 ms frames at the microphone's pace."""

    kind = "audio"

    def __init__(self, microphone: MarkerMicrophone) -> None:
        super().__init__()
        self._microphone = microphone
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._microphone.is_open:
            await self._microphone.open()
        pcm = await self._microphone.read()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._samples += len(pcm)
        return frame


async def bare_round(seconds: float) -> Timeline:
    timeline = Timeline()
    microphone = ProbedMicrophone(FakeMicrophone(400.0), timeline)
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    b.on("track", tracks.put_nowait)
    a.addTrack(MicrophoneTrack(microphone))
    b.addTransceiver("audio", direction="recvonly")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    track = await asyncio.wait_for(tracks.get(), 10)

    async def play() -> None:
        heard = PcmOnsets()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            at = now()
            index = heard.feed(pcm_of(frame))
            if index is not None:  # the decoded block is played as it comes
                for point in ("decoded", "mixed onset", "ear"):
                    timeline.note(point, at if point == "decoded" else onset_time(at, index))
                timeline.note("decoded onset", onset_time(at, index))

    player = asyncio.create_task(play())
    async with asyncio.timeout(10):
        while a.connectionState != "connected" or b.connectionState != "connected":
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    probe_audio_link(a, b, timeline)
    await asyncio.sleep(SETTLE)
    # The track is read by aiortc's sender: "pushed" is when it was handed the block.
    timeline.points["pushed"] = timeline.points.setdefault("captured", [])
    await mark_every(microphone, seconds)
    player.cancel()
    await a.close()
    await b.close()
    await microphone.close()
    return timeline


# --- the table ----------------------------------------------------------------------------


def stage_medians(timelines: list[Timeline]) -> tuple[list[float], dict[str, float], int]:
    """Every complete marker's total (ms) and each stage's median over them."""
    chains: list[list[float]] = []
    for timeline in timelines:
        chains += timeline.chains(POINTS, WINDOW)
    totals = [(c[-1] - c[0]) * 1000 for c in chains]
    stages = {}
    for label, start, end in STAGES:
        i, j = POINTS.index(start), POINTS.index(end)
        stages[label] = median([(c[j] - c[i]) * 1000 for c in chains])
    return totals, stages, len(chains)


def heaviest(stages: dict[str, float], baseline: dict[str, float] | None = None) -> str:
    if baseline is None:
        label = max(stages, key=lambda k: stages[k])
        return f"{label} ({stages[label]:.0f} ms)"
    label = max(stages, key=lambda k: stages[k] - baseline.get(k, 0.0))
    return f"{label} (+{stages[label] - baseline.get(label, 0.0):.0f} ms over aiortc)"


async def run(quick: bool) -> Result:
    rounds, seconds = (1, 1.5) if quick else (4, 8.0)
    ours, bare = await side_by_side(rounds, seconds, bare_round, callbox_round)
    our_totals, our_stages, our_n = stage_medians(ours)
    bare_totals, bare_stages, bare_n = stage_medians(bare)
    ours_ms, bare_ms = median(our_totals), median(bare_totals)
    ratio = ours_ms / bare_ms if bare_ms else float("nan")
    sent = sum(len(t.points.get("mouth", [])) for t in ours)
    rows: list[list[Any]] = [
        [label, our_stages[label], bare_stages[label]] for label, _, _ in STAGES
    ]
    rows.append(["output period (fake speaker: plays what it is handed)", 0.0, 0.0])
    rows.append(["**mouth to ear, median of totals**", ours_ms, bare_ms])
    rows.append(["markers heard", f"{our_n} of {sent}", bare_n])
    ramp = median([x * 1000 for t in ours for x in t.points.get("processed onset", [])])
    holding = heaviest(our_stages)
    over = heaviest(our_stages, bare_stages)
    return Result(
        "mouth_to_ear",
        "Mouth to ear: kit A's microphone to kit B's speaker (loopback, Opus 20 ms)",
        figures={
            "callbox_ms": ours_ms,
            "aiortc_ms": bare_ms,
            "ratio": ratio,
            "callbox_stages_ms": our_stages,
            "aiortc_stages_ms": bare_stages,
            "markers": our_n,
            "room_audio_ramp_ms": ramp,
            "sent": sent,
        },
        columns=["stage (median ms)", "callbox", "bare aiortc"],
        rows=rows,
        targets=[
            Target(
                f"at most {TARGET_MS:g} ms"
                + ("" if ours_ms <= TARGET_MS else f"; the largest stage: {holding}"),
                f"{ours_ms:.0f} ms",
                ours_ms <= TARGET_MS,
            ),
            Target(
                "at most 1.0 x bare aiortc"
                + ("" if ratio <= 1.0 else f"; the stage most over aiortc: {over}"),
                f"{ratio:.2f} x",
                ratio <= 1.0,
            ),
        ],
        notes=[
            "`python -m bench mouth_to_ear`",
            f"{rounds} rounds of {seconds:g} s each, callbox and bare aiortc taking turns, "
            f"a marker every {MARKER_EVERY:g} s from {SETTLE:g} s after the audio first "
            "played; audio-only calls, both kits and the session server in this process",
            "stage rows are medians of each stage over the markers: they need not add up to "
            "the median total",
            f"the look-ahead row is Opus's 6.5 ms and, for callbox, {ramp:.1f} ms by which "
            "kit A's room-audio stage (noise suppression) ramps the burst in after silence",
            "a real sound card adds its output period (20 ms at callbox's 20 ms periods) "
            "after the speaker is handed the samples, on both sides alike",
            "bare aiortc: the track's blocks go to aiortc as the microphone gives them and "
            "the decoded audio is played as it comes out of aiortc's receiver",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
