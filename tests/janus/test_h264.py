"""A camera that encodes H.264 itself goes through Janus as it is: the kit publishes H.264,
Janus relays the packets untouched, the others decode the camera's own frames."""

from aiortc.codecs import h264
from pytest_mock import MockerFixture

from appliance.media.janus.room import JanusRoomMedia
from appliance.media.outgoing import OutgoingVideo
from hal.camera.pattern import read_pattern
from tests.janus.checks import kits_on_janus
from tests.janus.server import JanusProcess
from tests.kits import KitFactory


async def test_the_cameras_h264_passes_through_janus(
    kits: KitFactory, janus: JanusProcess, mocker: MockerFixture
) -> None:
    encode = mocker.spy(h264.H264Encoder, "encode")
    pack = mocker.spy(h264.H264Encoder, "pack")
    a = await kits("room-a")
    b = await kits("room-b", camera={"fake_output": "h264", "keyframe_interval": 600})
    c = await kits("room-c")
    for kit in (a, b, c):
        await kit.join("h264")
    await a.wait_for_video_from("room-b", frames=10, timeout=40)
    await c.wait_for_video_from("room-b", frames=10, timeout=40)
    await b.wait_for_video_from("room-a", timeout=40)

    session = b.calls.session
    assert session is not None and isinstance(session.media, JanusRoomMedia)
    publisher = session.media.publisher
    assert publisher is not None and publisher.pc is not None
    (video,) = [t for t in publisher.pc.getTransceivers() if t.kind == "video"]
    track = video.sender.track
    assert isinstance(track, OutgoingVideo)
    assert track.codec == "video/h264"
    assert track.passes_packets
    assert track.packets_sent >= 10
    assert track.frames_sent == 0
    # Nothing encoded H.264 in software: aiortc only packed the camera's packets, and the
    # other kits send VP8, the room's first choice.
    assert encode.call_count == 0
    assert pack.call_count >= 10
    on_janus = await kits_on_janus(janus)
    assert on_janus["room-b"].video_codecs == ["h264"]
    assert on_janus["room-a"].video_codecs == ["vp8"]
    assert on_janus["room-b"].subscribers_of_video == [2]
    # What a decodes is b's camera: its pattern at the main stream's size.
    frame = a.view.latest["room-b"]
    assert read_pattern(frame) is not None
    assert (frame.width, frame.height) == (320, 240)
