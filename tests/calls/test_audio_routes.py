"""Audio routes: the far end's voice plays where the kit says, and follows headsets."""

import pytest

from appliance.calls import AudioMode, CallsError
from tests.kits import Kit, KitFactory


async def in_call(kits: KitFactory) -> tuple[Kit, Kit]:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("routes")
    await b.join("routes")
    await a.wait_to_hear(b.tone_hz)
    return a, b


async def test_set_audio_mode_moves_the_far_voice(kits: KitFactory) -> None:
    a, b = await in_call(kits)
    played_on_speaker = a.output(AudioMode.SPEAKER).total_samples
    await a.calls.set_audio_mode(AudioMode.EARPIECE)
    await a.wait_to_hear(b.tone_hz, route=AudioMode.EARPIECE)
    speaker_then = a.output(AudioMode.SPEAKER).total_samples
    assert speaker_then >= played_on_speaker
    assert not a.output(AudioMode.SPEAKER).is_open
    assert a.calls.snapshot()["local"]["audio_mode"] == "EARPIECE"

    with pytest.raises(CallsError) as err:
        await a.calls.set_audio_mode(AudioMode.HEADPHONES)  # not plugged in
    assert err.value.code == "audio-mode-unavailable"
    with pytest.raises(ValueError, match="mode"):
        await a.calls.set_audio_mode("LOUDSPEAKER")


async def test_headset_arrives_takes_over_and_leaving_falls_back(kits: KitFactory) -> None:
    a, b = await in_call(kits)
    a.bluetooth.add_device("00:11:22:33:44:55", "Jabra Evolve")

    mark = len(a.events)
    a.bluetooth.device_connects("00:11:22:33:44:55")
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert "BLUETOOTH" in changed.data["modes"]
    await a.wait_to_hear(b.tone_hz, route=AudioMode.BLUETOOTH)
    assert a.calls.snapshot()["audio_mode"] == "BLUETOOTH"

    mark = len(a.events)
    a.bluetooth.device_leaves("00:11:22:33:44:55")
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert "BLUETOOTH" not in changed.data["modes"]
    assert "SPEAKER" in changed.data["modes"]
    await a.wait_to_hear(b.tone_hz, route=AudioMode.SPEAKER)
    assert a.calls.snapshot()["audio_mode"] == "SPEAKER"


async def test_headphones_plugged_in(kits: KitFactory) -> None:
    a, b = await in_call(kits)
    mark = len(a.events)
    a.output(AudioMode.HEADPHONES).set_present(True)
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert changed.data["modes"] == ["SPEAKER", "EARPIECE", "HEADPHONES"]
    await a.wait_to_hear(b.tone_hz, route=AudioMode.HEADPHONES)
    a.output(AudioMode.HEADPHONES).set_present(False)
    await a.wait_to_hear(b.tone_hz, route=AudioMode.SPEAKER)


async def test_a_route_that_fails_falls_back_to_the_speaker(kits: KitFactory) -> None:
    a, b = await in_call(kits)
    await a.calls.set_audio_mode(AudioMode.EARPIECE)
    await a.wait_to_hear(b.tone_hz, route=AudioMode.EARPIECE)
    mark = len(a.events)
    a.output(AudioMode.EARPIECE).fail()
    changed = await a.wait_for("onAudioModeChanged", after=mark)
    assert "EARPIECE" not in changed.data["modes"]
    await a.wait_to_hear(b.tone_hz, route=AudioMode.SPEAKER)
