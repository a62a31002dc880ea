"""The Pi 4 packet path for real off-device: the real camera driver (picamera2 simulated,
its encoder libx264 set up like the Pi's) feeding a real aiortc call through LocalMedia and
Peer, decoded at the far end by a plain aiortc peer; a PLI from the far end forces a key frame.
A far end that cannot take H.264 gets the lores frames encoded as VP8."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import h264, vpx
from aiortc.mediastreams import MediaStreamError
from pytest_mock import MockerFixture

from appliance.media.h264_levels import sps_level
from appliance.media.local import LocalMedia
from appliance.media.outgoing import OutgoingVideo
from appliance.media.peer import Peer
from appliance.signaling.messages import Candidate, Description
from hal.camera.base import CameraInfo, VideoFormat
from hal.camera.fake import FakeCamera
from hal.camera.h264 import NAL_SPS, nal_types
from hal.camera.pattern import read_pattern
from hal.camera.real import PicameraCamera
from tests.hal.real.picamera_sim import force_sim_keyframe, sim_library
from tests.kits import Kit, KitFactory

SMALL = VideoFormat(480, 360, 30)  # its lores stream is 320x240: the two are told apart


@dataclass
class Decoded:
    key_frame: bool
    counter: int | None
    size: tuple[int, int]


@dataclass
class FarEnd:
    """A plain aiortc peer that only receives video, keeping what it decodes."""

    codecs: list[str] | None = None  # mime types it accepts; None: aiortc's defaults
    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    decoded: list[Decoded] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.pc.on("track", self._on_track)

    def add_receiver(self) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        if self.codecs is not None:
            capabilities = RTCRtpSender.getCapabilities("video").codecs
            wanted = [c for c in capabilities if c.mimeType in self.codecs]
            transceiver.setCodecPreferences(wanted)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                info = read_pattern(frame)
                self.decoded.append(
                    Decoded(
                        frame.key_frame, info.counter if info else None, (frame.width, frame.height)
                    )
                )

    def receiver(self) -> Any:
        return next(t.receiver for t in self.pc.getTransceivers() if t.kind == "video")

    async def wait_for(self, count: int, where: Any = lambda d: True, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while sum(1 for d in self.decoded if where(d)) < count:
                await asyncio.sleep(0.02)


@dataclass
class Call:
    camera: PicameraCamera
    local: LocalMedia
    peer: Peer
    far: FarEnd
    sent: list[Description]  # what the kit's peer sent the far end

    def outgoing(self) -> OutgoingVideo:
        transceiver = next(t for t in self.peer.pc.getTransceivers() if t.kind == "video")
        track = transceiver.sender.track
        assert isinstance(track, OutgoingVideo)
        return track

    def sender_ssrc(self) -> int:
        transceiver = next(t for t in self.peer.pc.getTransceivers() if t.kind == "video")
        ssrc: int = transceiver.sender._ssrc
        return ssrc


@contextlib.asynccontextmanager
async def call(*, kit_offers: bool, far_codecs: list[str] | None) -> AsyncIterator[Call]:
    camera = PicameraCamera(
        sim_library(),
        0,
        CameraInfo("csi0", "Camera Module 3", "h264"),
        keyframe_interval=600,  # only the first key frame and the ones asked for
        force_keyframe=force_sim_keyframe,
    )
    warnings: list[tuple[str, str, str]] = []
    local = LocalMedia([camera], None, SMALL, None, lambda *w: warnings.append(w))
    far = FarEnd(far_codecs)
    tasks: set[asyncio.Task[None]] = set()
    sent: list[Description] = []

    async def to_far_end(description: Description | None, candidate: Candidate | None) -> None:
        assert description is not None
        sent.append(description)
        # The peer holds its lock while sending: answer from a task, as signaling would.
        task = asyncio.ensure_future(far_end_handles(description))
        tasks.add(task)

    async def far_end_handles(description: Description) -> None:
        remote = RTCSessionDescription(sdp=description.sdp, type=description.type)
        if description.type == "offer":
            far.add_receiver()
        await far.pc.setRemoteDescription(remote)
        if description.type == "offer":
            await far.pc.setLocalDescription(await far.pc.createAnswer())
            answer = far.pc.localDescription
            await peer.handle(Description(type="answer", sdp=answer.sdp), None)

    peer = Peer(
        "far",
        offerer=kit_offers,
        local=local,
        send=to_far_end,
        on_track=lambda uid, track: None,
        on_health=lambda uid, health: None,
        me="kit",
    )
    await local.start(audio_muted=True, video_enabled=True, video_paused=False)
    try:
        if kit_offers:
            await peer.start(video=True)
        else:
            far.add_receiver()
            await far.pc.setLocalDescription(await far.pc.createOffer())
            offer = far.pc.localDescription
            await peer.handle(Description(type="offer", sdp=offer.sdp), None)
        yield Call(camera, local, peer, far, sent)
    finally:
        await peer.close()
        await far.pc.close()
        await local.stop()
        for task in (*tasks, *([far.reader] if far.reader else [])):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not camera.is_open
        assert not warnings, warnings


@pytest.mark.parametrize("kit_offers", [True, False], ids=["kit-offers", "kit-answers"])
async def test_hardware_h264_reaches_the_far_end_untouched_and_a_pli_forces_a_key_frame(
    kit_offers: bool, mocker: MockerFixture
) -> None:
    encode = mocker.spy(h264.H264Encoder, "encode")
    pack = mocker.spy(h264.H264Encoder, "pack")
    async with call(kit_offers=kit_offers, far_codecs=None) as c:
        await c.far.wait_for(15, lambda d: d.counter is not None)
        outgoing = c.outgoing()
        assert outgoing.codec == "video/h264"
        assert outgoing.passes_packets
        # Nothing decoded or re-encoded on the kit: aiortc only packed the camera's packets.
        assert encode.call_count == 0
        assert pack.call_count >= 15
        assert outgoing.frames_sent == 0
        decoded = list(c.far.decoded)
        counters = [d.counter for d in decoded if d.counter is not None]
        assert counters == sorted(counters)
        assert decoded[0].key_frame
        assert {d.size for d in decoded} == {(480, 360)}  # the main stream, not the lores one
        # The far end (aiortc, like a browser) declared level 3.1: the 480x360 stream goes
        # labelled 3.0, the level it needs, not the encoder's 4.0.
        assert outgoing.level_fits
        # The kit declares level 4.0 for what it receives, the far end aiortc's 3.1.
        assert all("profile-level-id=42e028" in d.sdp for d in c.sent if "H264" in d.sdp)
        assert "profile-level-id=42e01f" not in c.sent[-1].sdp
        sent = [bytes(call.args[1]) for call in pack.call_args_list]
        levels = {sps_level(data) for data in sent if NAL_SPS in nal_types(data)}
        assert levels == {30}
        keyframes_before = sum(d.key_frame for d in c.far.decoded)
        requests_before = c.camera.keyframe_requests

        await c.far.receiver()._send_rtcp_pli(c.sender_ssrc())

        async with asyncio.timeout(10):
            while sum(d.key_frame for d in c.far.decoded) <= keyframes_before:
                await asyncio.sleep(0.02)
        assert c.camera.keyframe_requests == requests_before + 1
        # The interval is 600 frames: this key frame is the one the PLI asked for.
        assert c.local.video_frames_sent < 600
        assert c.far.decoded[-1].counter is not None


async def test_a_far_end_without_h264_gets_the_lores_frames_as_vp8(mocker: MockerFixture) -> None:
    vp8 = mocker.spy(vpx.Vp8Encoder, "encode")
    pack = mocker.spy(h264.H264Encoder, "pack")
    async with call(kit_offers=True, far_codecs=["video/VP8"]) as c:
        await c.far.wait_for(10, lambda d: d.counter is not None)
        outgoing = c.outgoing()
        assert outgoing.codec == "video/vp8"
        assert not outgoing.passes_packets
        assert outgoing.packets_sent == 0
        assert vp8.call_count >= 10
        assert pack.call_count == 0
        preview = c.camera.preview_format
        assert preview is not None
        assert (preview.width, preview.height) == (320, 240)
        assert {d.size for d in c.far.decoded} == {(320, 240)}
        requests = c.camera.keyframe_requests
        await c.far.receiver()._send_rtcp_pli(c.sender_ssrc())
        count = len(c.far.decoded)
        await c.far.wait_for(count + 5)
        # aiortc's own VP8 encoder answers the PLI; the hardware encoder is not bothered.
        assert c.camera.keyframe_requests == requests


# --- whole kits: the fake camera's H.264 mode through the call API -----------------------


def video_track_to(kit: Kit, uid: str) -> OutgoingVideo:
    session = kit.calls.session
    assert session is not None
    peer = session.peers[uid]
    transceiver = next(t for t in peer.pc.getTransceivers() if t.kind == "video")
    track = transceiver.sender.track
    assert isinstance(track, OutgoingVideo)
    return track


async def until_camera(kit: Kit, uid: str, index: int) -> None:
    async with asyncio.timeout(15):
        while True:
            frame = kit.view.latest.get(uid)
            info = read_pattern(frame) if frame is not None else None
            if info is not None and info.camera_index == index:
                return
            await asyncio.sleep(0.03)


async def test_kits_pass_h264_through_across_pause_and_camera_switches(
    kits: KitFactory, mocker: MockerFixture
) -> None:
    a = await kits("room-a")
    b = await kits("room-b", camera={"fake_output": "h264", "keyframe_interval": 600})
    # b's second camera gives frames only, as a USB webcam beside a CSI camera does.
    first = b.cameras[0]
    webcam = FakeCamera(
        CameraInfo("usb-046d:0825", "Webcam"), index=1, colour=first.colour, kit_name=b.name
    )
    b.hardware.cameras[1] = webcam
    encode = mocker.spy(h264.H264Encoder, "encode")
    pack = mocker.spy(h264.H264Encoder, "pack")
    await a.join("pass")
    await b.join("pass")
    await a.wait_for_video_from("room-b", frames=10)
    track = video_track_to(b, "room-a")
    assert track.codec == "video/h264"
    assert track.passes_packets
    # Kit to kit, both declare level 4.0: the camera's SPS goes as it is.
    sent = [bytes(call.args[1]) for call in pack.call_args_list]
    assert {sps_level(data) for data in sent if NAL_SPS in nal_types(data)} == {40}
    assert track.packets_sent >= 10
    assert track.frames_sent == 0
    assert "local" in b.view.latest  # the self view comes from the preview frames
    assert read_pattern(b.view.latest["local"]) is not None

    await b.calls.pause_video(True)
    assert not first.is_open
    assert first.keyframes_sent == 0  # the encoder went with the camera
    await b.calls.pause_video(False)
    await a.wait_for_video_from("room-b", frames=10)
    assert first.keyframes_sent >= 1  # the fresh encoder starts with a key frame

    # To the webcam: frames, which aiortc now encodes to H.264 for the same sender.
    await b.calls.switch_camera()
    await until_camera(a, "room-b", 1)
    assert not track.passes_packets
    assert track.frames_sent > 0
    assert not first.is_open
    software = encode.call_count
    assert software > 0
    # And back to the camera with its own encoder: packets again, from a key frame.
    requests = first.keyframe_requests
    packets = track.packets_sent
    await b.calls.switch_camera()
    await until_camera(a, "room-b", 0)
    await a.wait_for_video_from("room-b", frames=10)
    assert track.passes_packets
    assert track.packets_sent > packets
    assert first.keyframe_requests > requests
