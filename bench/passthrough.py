"""H.264 pass-through: what a kit spends sending 720p30 to N peers when its camera encodes
(a Pi 4's hardware encoder: packets go out as they are) against aiortc encoding the frames
in software (H.264 and VP8, once per peer, as on a Pi 5 or with a USB webcam).

The camera replays a clip encoded beforehand, so its own encoding (hardware, on a Pi) is not
counted; the far ends are bare aiortc peers in another process. What is measured is this
process: LocalMedia, OutgoingVideo, aiortc's packetizer and (for frames) its encoders.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from appliance.media.local import LocalMedia
from appliance.media.peer import Peer
from appliance.signaling.messages import Candidate, Description
from bench.common import Result, Target, cpu_and_wall
from hal.camera.base import CameraError, CameraInfo, VideoFormat
from hal.camera.h264 import PiStyleH264Encoder, preview_size
from hal.camera.pattern import TestPattern
from hal.pacing import Pacer

HD = VideoFormat(1280, 720, 30)
CLIP_FRAMES = 60
WARMUP = 1.5


class ReplayCamera:
    """A camera replaying a clip: pre-encoded H.264 (with small preview frames beside it) or
    frames. Paced like a sensor; a key frame request restarts the clip at its key frame."""

    def __init__(self, output: str, packets: list[tuple[bytes, bool]], frames: list[Any]) -> None:
        self._info = CameraInfo("replay", "Replay", output)  # type: ignore[arg-type]
        self._packets, self._frames = packets, frames
        self._previews = [f.reformat(*preview_size(f.width, f.height)) for f in frames]
        self._pacer: Pacer | None = None
        self._slot = 0
        self._offset = 0  # the slot the clip last started at
        self._restart = False
        self._preview_slot = asyncio.Event()

    @property
    def info(self) -> CameraInfo:
        return self._info

    @property
    def is_open(self) -> bool:
        return self._pacer is not None

    async def open(self, fmt: VideoFormat) -> None:
        self._pacer = Pacer(1 / fmt.fps)
        self._pacer.start()

    async def read(self) -> Any:
        if self._pacer is None:
            raise CameraError("camera", "not open")
        self._slot = await self._pacer.next_slot()
        self._preview_slot.set()
        if self._info.output != "h264":
            return self._frames[self._slot % CLIP_FRAMES]
        if self._restart:
            self._restart, self._offset = False, self._slot
        data, keyframe = self._packets[(self._slot - self._offset) % CLIP_FRAMES]
        packet = av.Packet(data)
        packet.is_keyframe = keyframe
        return packet

    async def read_preview(self) -> av.VideoFrame:
        await self._preview_slot.wait()
        self._preview_slot.clear()
        if self._pacer is None:
            raise CameraError("camera", "closed")
        frame: av.VideoFrame = self._previews[self._slot % CLIP_FRAMES]
        return frame

    def request_keyframe(self) -> None:
        self._restart = True

    async def close(self) -> None:
        self._pacer = None
        self._preview_slot.set()


def make_clip() -> tuple[list[tuple[bytes, bool]], list[Any]]:
    """The test pattern with sensor-like noise (flat colour would flatter every encoder)."""
    pattern = TestPattern(HD.width, HD.height, colour=(40, 120, 200), label="bench", camera_index=0)
    encoder = PiStyleH264Encoder(HD.width, HD.height, HD.fps, keyframe_interval=CLIP_FRAMES)
    noise = np.random.default_rng(7)
    frames, packets = [], []
    for index in range(CLIP_FRAMES):
        planes = pattern.frame(index).to_ndarray()
        grain = noise.integers(-6, 7, planes.shape, dtype=np.int16)
        noisy = np.clip(planes.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(noisy, format="yuv420p")
        frames.append(frame)
        packets += [(unit.data, unit.keyframe) for unit in encoder.encode(frame)]
    return packets, frames


# --- the far ends, in a process of their own so their decoding is not counted ------------


def far_ends_main(conn: Connection) -> None:
    asyncio.run(_far_ends(conn))


async def _far_ends(conn: Connection) -> None:
    """Answers offers from the pipe with plain aiortc peers that decode what they get;
    ("count",) returns the frames decoded so far, ("stop",) ends."""
    pcs: list[RTCPeerConnection] = []
    decoded = [0]

    async def drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                decoded[0] += 1

    while True:
        message = await asyncio.to_thread(conn.recv)
        if message[0] == "offer":
            pc = RTCPeerConnection()
            pc.on("track", lambda track: asyncio.ensure_future(drain(track)))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=message[1], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            pcs.append(pc)
            conn.send(("answer", pc.localDescription.sdp))
        elif message[0] == "count":
            conn.send(("count", decoded[0]))
        else:
            for pc in pcs:
                await pc.close()
            conn.send(("stopped",))
            return


class FarEnds:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=far_ends_main, args=(child,), daemon=True)
        self._process.start()
        self._lock = asyncio.Lock()

    async def ask(self, *message: Any) -> Any:
        async with self._lock:
            self._conn.send(message)
            return await asyncio.to_thread(self._conn.recv)

    async def close(self) -> None:
        await self.ask("stop")
        await asyncio.to_thread(self._process.join, 10)


async def measure(
    output: str, codec: str | None, peers: int, seconds: float, warmup: float
) -> dict[str, Any]:
    packets, frames = await asyncio.to_thread(make_clip)
    camera = ReplayCamera(output, packets, frames)
    local = LocalMedia([camera], None, HD, None, lambda *warning: None)
    await local.start(audio_muted=True, video_enabled=True, video_paused=False)
    far = FarEnds()
    links: list[Peer] = []
    tasks: set[asyncio.Future[None]] = set()

    async def answered(peer: Peer, offer: str) -> None:
        _, answer = await far.ask("offer", offer)
        await peer.handle(Description(type="answer", sdp=answer), None)

    try:
        for index in range(peers):

            async def send(
                description: Description | None, candidate: Candidate | None, index: int = index
            ) -> None:
                assert description is not None  # the peer holds its lock: answer in a task
                tasks.add(asyncio.ensure_future(answered(links[index], description.sdp)))

            peer = Peer(
                f"far{index}",
                offerer=True,
                local=local,
                send=send,
                on_track=lambda uid, track: None,
                on_health=lambda uid, health: None,
                me="kit",
                video_codec=codec,
            )
            links.append(peer)
            await peer.start(video=True)
        await asyncio.sleep(warmup)
        _, before = await far.ask("count")
        with cpu_and_wall() as used:
            await asyncio.sleep(seconds)
        _, after = await far.ask("count")
    finally:
        for peer in links:
            await peer.close()
        await far.close()
        await local.stop()
        for task in tasks:
            task.cancel()
    wall = used["wall"]
    return {
        "cpu_per_s": used["cpu"] / wall,
        "frames_per_s_per_peer": (after - before) / wall / peers,
    }


async def run(quick: bool) -> Result:
    seconds, warmup = (0.5, 0.5) if quick else (4.0, WARMUP)
    peer_counts = (1,) if quick else (1, 3)
    modes = [
        ("camera H.264 passed through", "h264", None),
        ("aiortc H.264 (libx264)", "frames", "H264"),
        ("aiortc VP8 (libvpx)", "frames", "VP8"),
    ]
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {}
    for peers in peer_counts:
        for label, output, codec in modes:
            measured = await measure(output, codec, peers, seconds, warmup)
            figures[f"{label}, {peers} peer(s)"] = measured
            rows.append([label, peers, measured["cpu_per_s"], measured["frames_per_s_per_peer"]])
    passthrough = figures["camera H.264 passed through, 1 peer(s)"]["cpu_per_s"]
    software = figures["aiortc H.264 (libx264), 1 peer(s)"]["cpu_per_s"]
    return Result(
        "passthrough",
        "Sending 720p30: the camera's H.264 passed through vs encoded by aiortc",
        figures=figures,
        columns=["video", "peers", "sending CPU-s per s", "frames/s received per peer"],
        rows=rows,
        targets=[
            Target(
                "pass-through costs at most a fifth of software H.264 (1 peer)",
                f"{passthrough / software:.2f} x",
                passthrough <= software / 5,
            )
        ],
        notes=[
            f"measured over {seconds:g} s after {warmup:g} s of warm-up; the far ends decode in "
            "another process; on this machine, not a Pi; the clip is the test pattern with "
            "sensor-like noise"
        ],
    )


if __name__ == "__main__":
    asyncio.run(run(False)).print()
