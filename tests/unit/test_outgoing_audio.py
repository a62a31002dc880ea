"""Our microphone to a peer over a real aiortc connection: Opus peers get the packets the
kit encodes once for all of them; a peer that negotiated G.711 gets frames, which aiortc
encodes. Either way the far side decodes our tone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver

from appliance.media.local import LocalMedia, pcm_of
from appliance.media.outgoing_audio import follow_audio_sender
from hal.audio.fake import FakeMicrophone
from hal.audio.pcm import dominant_frequency, rms_dbfs
from hal.camera.base import VideoFormat

TONE_HZ = 700.0


@pytest.mark.parametrize(("codec", "packets"), [("audio/opus", True), ("audio/PCMU", False)])
async def test_the_far_side_hears_our_microphone(codec: str, packets: bool) -> None:
    local = LocalMedia([], FakeMicrophone(TONE_HZ), VideoFormat(), None, lambda *w: None)
    ours, theirs = RTCPeerConnection(), RTCPeerConnection()
    audio = local.audio_track()
    follow_audio_sender(ours.addTransceiver(audio, direction="sendonly").sender, audio)
    wanted = [
        c
        for c in RTCRtpReceiver.getCapabilities("audio").codecs
        if c.mimeType.lower() == codec.lower()
    ]
    theirs.addTransceiver("audio", direction="recvonly").setCodecPreferences(wanted)
    arrived: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    theirs.on("track", lambda track: arrived.set_result(track))
    await local.start(audio_muted=False, video_enabled=False, video_paused=False)
    try:
        # They offer (their codec preference decides), we answer.
        await theirs.setLocalDescription(await theirs.createOffer())
        await ours.setRemoteDescription(theirs.localDescription)
        await ours.setLocalDescription(await ours.createAnswer())
        await theirs.setRemoteDescription(ours.localDescription)
        track = await asyncio.wait_for(arrived, 20)
        heard, rate = [], 0
        for _ in range(50):  # a second of what they decode
            frame = await asyncio.wait_for(track.recv(), 20)  # type: ignore[attr-defined]
            heard.append(pcm_of(frame))
            rate = frame.sample_rate  # Opus decodes at 48 kHz, G.711 at 8 kHz
    finally:
        await local.stop()
        await ours.close()
        await theirs.close()
    assert audio.codec == codec.lower() and audio.takes_packets is packets
    pcm = np.concatenate(heard[25:])  # past the decoder's start
    assert abs(dominant_frequency(pcm, rate) - TONE_HZ) < 15 and rms_dbfs(pcm) > -30
