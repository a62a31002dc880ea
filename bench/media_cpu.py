"""Media CPU: CPU seconds per call-minute of a two-kit 720p30 call (both kits in this
process, so the figure covers two encoders and two decoders each way), per video codec,
against bare aiortc peers sending the same camera and microphone with the same codec; and
the same call with both cameras emitting H.264 as a Pi 4's hardware encoder does (a clip
replayed, so only what the kits spend is counted: packetizing, sending and decoding)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
)

from bench.common import Result, Target, cpu_and_wall, median
from bench.passthrough import ReplayCamera, make_clip
from hal.audio.fake import FakeMicrophone
from hal.camera.base import CameraInfo, VideoFormat
from hal.camera.fake import FakeCamera
from tests.kits import KitFactory, running_server

HD = VideoFormat(1280, 720, 30)
WARMUP = 3.0  # past the encoders' bitrate ramp-up
Clip = tuple[list[tuple[bytes, bool]], list[Any]]


class CameraTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.camera = FakeCamera(
            CameraInfo("fake0", "Fake camera 1"), index=0, colour=(30, 90, 200), kit_name=name
        )

    async def recv(self) -> Any:
        if not self.camera.is_open:
            await self.camera.open(HD)
        return await self.camera.read()


class MicrophoneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self.microphone = FakeMicrophone(hz)
        self._samples = 0

    async def recv(self) -> Any:
        from appliance.media.local import _audio_frame

        if not self.microphone.is_open:
            await self.microphone.open()
        pcm = await self.microphone.read()
        frame = _audio_frame(pcm, self._samples)
        self._samples += len(pcm)
        return frame


def prefer(pc: RTCPeerConnection, codec: str) -> None:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    wanted = [c for c in codecs if c.mimeType.lower() in (f"video/{codec}".lower(), "video/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(wanted)


async def bare_aiortc(codec: str, seconds: float) -> tuple[float, int]:
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = [0]
    readers: list[asyncio.Task[None]] = []

    def on_track(track: MediaStreamTrack) -> None:
        async def drain() -> None:
            while True:
                await track.recv()
                if track.kind == "video":
                    frames[0] += 1

        readers.append(asyncio.create_task(drain()))

    a.on("track", on_track)
    b.on("track", on_track)
    tracks = [CameraTrack("a"), MicrophoneTrack(400), CameraTrack("b"), MicrophoneTrack(650)]
    a.addTrack(tracks[1])
    a.addTransceiver(tracks[0], direction="sendrecv")
    prefer(a, codec)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    for transceiver in b.getTransceivers():
        transceiver.sender.replaceTrack(tracks[3] if transceiver.kind == "audio" else tracks[2])
        transceiver.direction = "sendrecv"
    prefer(b, codec)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(WARMUP)
    before = frames[0]
    with cpu_and_wall() as used:
        await asyncio.sleep(seconds)
    decoded = frames[0] - before
    for reader in readers:
        reader.cancel()
    await a.close()
    await b.close()
    return used["cpu"] / used["wall"] * 60, decoded


async def callbox(
    codec: str, seconds: float, tmp: Path, clip: Clip | None = None
) -> tuple[float, int]:
    """A two-kit call; with ``clip`` each kit's camera replays it as hardware H.264."""
    where = tmp / (codec + ("-passthrough" if clip else ""))
    async with running_server(where) as server:
        kits = KitFactory(server, where)
        try:
            a = await kits("room-a", video_codec=codec, video_format=HD)
            b = await kits("room-b", video_codec=codec, video_format=HD)
            if clip is not None:
                for kit in (a, b):
                    kit.hardware.cameras[:] = [ReplayCamera("h264", *clip)]
            await a.join("cpu")
            await b.join("cpu")
            await a.wait_for_video_from("room-b", timeout=20)
            await asyncio.sleep(WARMUP)
            before = a.view.counts.get("room-b", 0) + b.view.counts.get("room-a", 0)
            with cpu_and_wall() as used:
                await asyncio.sleep(seconds)
            decoded = a.view.counts["room-b"] + b.view.counts["room-a"] - before
        finally:
            await kits.close()
    return used["cpu"] / used["wall"] * 60, decoded


async def run(quick: bool) -> Result:
    seconds, rounds = (2.0, 1) if quick else (4.0, 3)
    # Each round measures everything once, taking turns, so a noisy neighbour on a shared
    # machine sways every column alike; the table has the medians over the rounds.
    cpu: dict[str, list[float]] = {}
    fps: dict[str, list[float]] = {}

    def keep(name: str, measured: tuple[float, int]) -> None:
        cpu.setdefault(name, []).append(measured[0])
        fps.setdefault(name, []).append(measured[1] / seconds)

    clip = make_clip()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            where = Path(tmp) / str(n)
            for codec in ("VP8", "H264"):
                keep(f"aiortc {codec}", await bare_aiortc(codec, seconds))
                keep(f"callbox {codec}", await callbox(codec, seconds, where))
            keep("callbox pass-through", await callbox("H264", seconds, where, clip=clip))
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {"rounds": cpu}
    targets: list[Target] = []
    for codec in ("VP8", "H264"):
        ours, bare = median(cpu[f"callbox {codec}"]), median(cpu[f"aiortc {codec}"])
        ratio = ours / bare
        figures[codec] = {"callbox": ours, "aiortc": bare, "ratio": ratio}
        rows.append(
            [
                f"{codec} (software)",
                ours,
                bare,
                ratio,
                median(fps[f"callbox {codec}"]),
                median(fps[f"aiortc {codec}"]),
            ]
        )
        targets.append(
            Target(f"{codec}: callbox at most 1.15 x bare aiortc", f"{ratio:.2f} x", ratio <= 1.15)
        )
    passthrough = median(cpu["callbox pass-through"])
    share = passthrough / figures["H264"]["callbox"]
    figures["H264 pass-through"] = {"callbox": passthrough, "of_software_h264": share}
    rows.append(
        [
            "H.264 pass-through (camera-encoded)",
            passthrough,
            "-",
            "-",
            median(fps["callbox pass-through"]),
            "-",
        ]
    )
    targets.append(
        Target(
            "pass-through at most 0.2 x software H.264 (whole call)", f"{share:.2f} x", share <= 0.2
        )
    )
    return Result(
        "media_cpu",
        "Media CPU: two-kit 720p30 call, CPU seconds per call-minute (both kits)",
        figures=figures,
        columns=[
            "codec",
            "callbox CPU-s/min",
            "bare aiortc CPU-s/min",
            "ratio",
            "callbox frames/s decoded",
            "aiortc frames/s decoded",
        ],
        rows=rows,
        targets=targets,
        notes=[
            f"medians of {rounds} rounds taking turns, each call measured over {seconds:g} s "
            f"after {WARMUP:g} s of warm-up; "
            "callbox also mixes and plays the received audio and shows the self view",
            "the pass-through call still decodes both directions in software (as a Pi does); "
            "`passthrough` below isolates the sending side",
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
