"""H.264 levels: the camera's modes, real SDP negotiated by aiortc, and the config's limit."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from pydantic import ValidationError

from appliance.media.h264_levels import (
    KIT_LEVEL,
    declare_level,
    declared_level,
    level_needed,
    relabel_sps,
    sps_level,
)
from hal.camera.h264 import NAL_SPS, PiStyleH264Encoder, nal_types
from hal.camera.pattern import TestPattern
from hal.config import CameraConfig, HalConfig


def test_levels_of_camera_modes() -> None:
    assert level_needed(640, 480, 30) == 30
    assert level_needed(1280, 720, 30) == 31
    assert level_needed(1920, 1080, 30) == 40
    assert level_needed(1920, 1080, 60) == 42
    assert level_needed(480, 360, 30) == 30


def test_the_pi4_encoder_limit_is_a_clear_config_error() -> None:
    CameraConfig(width=1920, height=1080, fps=30)
    CameraConfig(width=1280, height=720, fps=60)  # as many macroblocks a second
    with pytest.raises(ValidationError, match=r"1920x1080 at 60 fps is more than the Pi 4"):
        HalConfig.model_validate({"camera": {"width": 1920, "height": 1080, "fps": 60}})
    with pytest.raises(ValidationError, match="lower width, height or fps"):
        CameraConfig(width=1920, height=1080, fps=31)


async def negotiate(*, kit_offers: bool) -> tuple[str, str]:
    """A kit's SDP (as Peer sends it) against plain aiortc's, with H.264 video: (the kit's
    description, the other's)."""
    kit, other = RTCPeerConnection(), RTCPeerConnection()
    try:
        h264 = [
            c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"
        ]
        first, second = (kit, other) if kit_offers else (other, kit)
        first.addTransceiver("video", direction="sendrecv").setCodecPreferences(h264)
        await first.setLocalDescription(await first.createOffer())
        offer = first.localDescription.sdp
        if kit_offers:
            offer = declare_level(offer)
        await second.setRemoteDescription(first.localDescription.__class__(offer, "offer"))
        await second.setLocalDescription(await second.createAnswer())
        answer = second.localDescription.sdp
        if not kit_offers:
            answer = declare_level(answer)
        return (offer, answer) if kit_offers else (answer, offer)
    finally:
        await kit.close()
        await other.close()


@pytest.mark.parametrize("kit_offers", [True, False], ids=["kit-offers", "kit-answers"])
async def test_a_kit_declares_the_level_of_its_camera_and_reads_the_peers(
    kit_offers: bool,
) -> None:
    kit_sdp, other_sdp = await negotiate(kit_offers=kit_offers)
    payload_types = [
        int(line.split()[0].split(":")[1])
        for line in kit_sdp.splitlines()
        if line.startswith("a=rtpmap:") and "H264/90000" in line
    ]
    assert payload_types
    for pt in payload_types:
        assert declared_level(kit_sdp, pt) == KIT_LEVEL
        assert declared_level(other_sdp, pt) == 31  # aiortc's, and browsers', 42e01f
    assert "profile-level-id=42e028" in kit_sdp
    assert "profile-level-id=42e01f" in other_sdp
    assert 127 not in payload_types
    assert declared_level(kit_sdp, 127) is None  # not H.264 there


def test_relabelling_the_sps_keeps_the_stream_decodable() -> None:
    import av

    encoder = PiStyleH264Encoder(480, 360, 30, keyframe_interval=5)
    pattern = TestPattern(480, 360, colour=(10, 200, 30), label="lvl", camera_index=0)
    units = [u.data for n in range(10) for u in encoder.encode(pattern.frame(n))]
    relabelled = [relabel_sps(data, 30) for data in units]
    for before, after in zip(units, relabelled, strict=True):
        if NAL_SPS in nal_types(before):
            assert (sps_level(before), sps_level(after)) == (40, 30)
        else:
            assert after == before
    codec = av.CodecContext.create("h264", "r")
    frames = [f for data in relabelled for f in codec.decode(av.Packet(data))]
    frames += codec.decode(None)
    assert len(frames) == 10


def test_a_mode_beyond_the_peers_level_goes_as_frames() -> None:
    from appliance.media.outgoing import OutgoingVideo

    requests: list[int] = []
    track = OutgoingVideo(lambda: requests.append(1))
    track.use_codec("video/H264")
    track.set_camera_packets(True)
    track.set_peer_level(31)
    track.set_stream_level(30)  # 640x480 at 30 fps
    assert track.passes_packets
    track.set_stream_level(40)  # 1080p30: more than a level 3.1 decoder must take
    assert not track.level_fits and not track.passes_packets
    track.set_peer_level(KIT_LEVEL)  # another kit
    assert track.passes_packets
    track.stop()
