"""Hardware that fails mid-call: the call goes on without it and takes it back when it
returns. (A Bluetooth headset that leaves: tests/calls/test_audio_routes.py; an ALSA card
that disappears, underruns and overruns: tests/hal/real/test_audio.py.)"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.calls import AudioMode, SessionState
from appliance.display.render import avatar_colour
from hal.audio.pcm import dominant_frequency
from hal.camera.pattern import kit_colour
from tests.display.conftest import (
    ScreenKit,
    live_tile_shows,
    near,
    region,
    screen_kits,
)
from tests.hal.real.alsa import PCMS, AlsaSetup, FifoReader, write_alsa_config
from tests.kits import Kit, KitFactory

__all__ = ["screen_kits"]

Frame = np.ndarray[Any, Any]
B = kit_colour("room-b")
ALSA_MIC_HZ = 700.0


async def in_call(kits: KitFactory, session: str, **hal: Any) -> tuple[Kit, Kit]:
    a = await kits("room-a")
    b = await kits("room-b", **hal)
    await a.join(session)
    await b.join(session)
    await a.wait_for_video_from("room-b")
    await b.wait_for_video_from("room-a")
    return a, b


async def hears_from_now_on(kit: Kit, hz: float, route: AudioMode) -> None:
    """``route`` plays ``hz`` in what it is given from now on (not what it kept from
    before: an output keeps the last minute it played)."""
    output = kit.output(route)
    played = output.total_samples
    async with asyncio.timeout(10):
        while output.total_samples < played + 48_000 // 4:
            await asyncio.sleep(0.02)
    await kit.wait_to_hear(hz, route=route)


def avatar_of(kit: ScreenKit, uid: str) -> Any:
    def check(frame: Frame) -> bool:
        tile = kit.screen.shown_layout.tile_of(uid)
        face = avatar_colour(uid)
        return tile is not None and not tile.live and near(region(frame, tile.rect), face, 4).any()

    return check


async def test_the_camera_fails_mid_call_and_comes_back(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("camera")
    await b.kit.join("camera")
    await a.until(live_tile_shows(a, "room-b", B))
    mark_a, mark_b = len(a.kit.events), len(b.kit.events)

    b.kit.cameras[0].fail()  # the USB camera is pulled

    warning = await b.kit.wait_for(
        "onWarning", lambda d: d["code"] == "camera-failed", after=mark_b
    )
    assert warning.data["device"] == "camera"
    paused = await a.kit.wait_for(
        "onUserVideoPaused", lambda d: d["user"]["uid"] == "room-b", after=mark_a
    )
    assert paused.data["is_paused"] is True
    frame = await a.until(avatar_of(a, "room-b"))  # the far end sees the avatar
    assert near(frame, B, 30).sum() == 0
    # Audio-only from b, both ways; a's video still reaches b.
    await a.kit.wait_to_hear(b.kit.tone_hz)
    await b.kit.wait_to_hear(a.kit.tone_hz)
    await b.kit.wait_for_video_from("room-a")
    assert b.kit.calls.session is not None and a.kit.calls.session is not None

    mark_a, mark_b = len(a.kit.events), len(b.kit.events)
    b.kit.cameras[0].restore()  # plugged back in

    await b.kit.wait_for("onWarning", lambda d: d["code"] == "camera-restored", after=mark_b)
    resumed = await a.kit.wait_for(
        "onUserVideoPaused", lambda d: d["user"]["uid"] == "room-b", after=mark_a
    )
    assert resumed.data["is_paused"] is False
    await a.kit.wait_for_video_from("room-b")  # the counter runs again
    await a.until(live_tile_shows(a, "room-b", B))
    assert not a.kit.named("onCallEnded") and not b.kit.named("onCallEnded")


async def test_the_microphone_fails_mid_call_and_comes_back(kits: KitFactory) -> None:
    a, b = await in_call(kits, "microphone")
    await a.wait_to_hear(b.tone_hz)
    mark = len(b.events)

    b.microphone.fail()

    await b.wait_for("onWarning", lambda d: d["code"] == "microphone-failed", after=mark)
    await a.wait_for_silence()
    await a.wait_for_video_from("room-b")  # video goes on
    await b.wait_to_hear(a.tone_hz)

    mark = len(b.events)
    b.microphone.restore()
    await b.wait_for("onWarning", lambda d: d["code"] == "microphone-restored", after=mark)
    await a.wait_to_hear(b.tone_hz)
    assert b.calls.session is not None


async def test_a_device_that_errors_on_release_still_ends_the_call(kits: KitFactory) -> None:
    a, b = await in_call(kits, "release")
    b.cameras[0].close_error = OSError(errno.ENODEV, "No such device")

    await b.calls.end_session()

    assert b.calls.state == SessionState.IDLE and b.calls.session is None
    await b.wait_for("onCallEnded")
    await a.wait_for("onUserLeft", lambda user: user["uid"] == "room-b")
    # Nothing left held: the kit takes the next call with its microphone and speaker.
    b.cameras[0].close_error = None
    await b.join("release-again")
    await a.join("release-again")
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)


async def test_a_failing_speaker_falls_back_and_is_reopened_when_it_works(
    kits: KitFactory,
) -> None:
    a, b = await in_call(kits, "speaker")
    await a.wait_to_hear(b.tone_hz)
    mark = len(a.events)

    a.output(AudioMode.SPEAKER).fail()  # writes and opens raise AudioError

    gone = await a.wait_for("onAudioModeChanged", after=mark)
    assert gone.data["modes"] == ["EARPIECE"]
    await a.wait_to_hear(b.tone_hz, route=AudioMode.EARPIECE)
    assert a.calls.snapshot()["audio_mode"] == "EARPIECE"

    mark = len(a.events)
    a.output(AudioMode.SPEAKER).restore()  # the device works again: it is tried and taken back

    back = await a.wait_for("onAudioModeChanged", lambda d: "SPEAKER" in d["modes"], after=mark)
    assert back.data["modes"] == ["SPEAKER", "EARPIECE"]
    await hears_from_now_on(a, b.tone_hz, AudioMode.SPEAKER)
    assert a.calls.snapshot()["audio_mode"] == "SPEAKER"
    assert not a.output(AudioMode.EARPIECE).is_open


async def test_with_every_route_failed_the_call_goes_on_until_one_works(kits: KitFactory) -> None:
    a, b = await in_call(kits, "no-route")
    await a.wait_to_hear(b.tone_hz)
    mark = len(a.events)
    a.output(AudioMode.EARPIECE).fail()
    a.output(AudioMode.SPEAKER).fail()

    await a.wait_for("onAudioModeChanged", lambda d: d["modes"] == [], after=mark)
    assert a.calls.snapshot()["audio_mode"] is None
    await b.wait_to_hear(a.tone_hz)  # a still sends, and sees
    await a.wait_for_video_from("room-b")

    a.output(AudioMode.EARPIECE).restore()
    await hears_from_now_on(a, b.tone_hz, AudioMode.EARPIECE)
    assert a.calls.snapshot()["audio_mode"] == "EARPIECE"


class ModesDelegate:
    """A CallsEventsDelegate that keeps what on_audio_mode_changed was told."""

    def __init__(self) -> None:
        self.modes: list[list[AudioMode]] = []

    def on_audio_mode_changed(self, modes: list[AudioMode]) -> None:
        self.modes.append(list(modes))


async def test_a_headset_that_walks_away_tells_the_delegate_and_the_call_moves_on(
    kits: KitFactory,
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    delegate = ModesDelegate()
    await a.join("headset", delegate=delegate)
    await b.join("headset")
    await a.wait_to_hear(b.tone_hz)
    a.bluetooth.add_device("00:11:22:33:44:55", "Jabra Evolve")
    a.bluetooth.device_connects("00:11:22:33:44:55")
    await a.wait_to_hear(b.tone_hz, route=AudioMode.BLUETOOTH)
    assert delegate.modes[-1] == [AudioMode.SPEAKER, AudioMode.EARPIECE, AudioMode.BLUETOOTH]

    a.bluetooth.device_leaves("00:11:22:33:44:55")  # out of range

    await hears_from_now_on(a, b.tone_hz, AudioMode.SPEAKER)
    assert delegate.modes[-1] == [AudioMode.SPEAKER, AudioMode.EARPIECE]
    assert a.calls.snapshot()["audio_mode"] == "SPEAKER"
    await b.wait_to_hear(a.tone_hz)  # and the other way, untouched


# --- a real ALSA PCM that errors mid-call and is reopened ---------------------------------


@pytest.fixture
def alsa_speaker_that_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AlsaSetup, Path, FifoReader]]:
    """The test asound.conf, but the speaker PCM's file is a link: first to a FIFO whose
    reader the test pulls away (the PCM's writes then fail with an I/O error), then, for
    the reopen, to a plain file."""
    setup = write_alsa_config(tmp_path / "alsa", mic_tone_hz=ALSA_MIC_HZ, paced_microphone=True)
    root = setup.root
    link, fifo = root / "speaker.link", root / "speaker.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    os.symlink(fifo, link)
    conf = root / "asound.conf"
    conf.write_text(conf.read_text().replace(f'"{setup.output_file("speaker")}"', f'"{link}"'))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    yield setup, link, reader
    if not reader._stop.is_set():
        reader.unplug()
    setup.close()


async def test_an_alsa_speaker_that_errors_falls_back_and_is_reopened(
    kits: KitFactory, alsa_speaker_that_errors: tuple[AlsaSetup, Path, FifoReader]
) -> None:
    setup, link, reader = alsa_speaker_that_errors
    a = await kits("room-a")
    b = await kits("room-b", audio={"backend": "real", **PCMS})
    await a.join("alsa-errors")
    await b.join("alsa-errors")
    await a.wait_to_hear(ALSA_MIC_HZ)  # b's ALSA microphone
    async with _timeout(15):
        while not _tone(bytes(reader.data), a.tone_hz):
            await _sleep()
    mark = len(b.events)

    # The next open finds a working device; the open PCM's writes now fail (EPIPE -> EIO).
    replacement = setup.root / "speaker.back.raw"
    os.symlink(replacement, link.with_suffix(".new"))
    os.replace(link.with_suffix(".new"), link)
    reader.unplug()

    gone = await b.wait_for("onAudioModeChanged", lambda d: "SPEAKER" not in d["modes"], after=mark)
    assert gone.data["modes"] == ["EARPIECE", "HEADPHONES"]  # no jack here: offered by hand
    async with _timeout(15):  # the call's audio moved to the earpiece PCM
        while not _tone(_tail(setup.output_file("earpiece")), a.tone_hz):
            await _sleep()
    back = await b.wait_for("onAudioModeChanged", lambda d: "SPEAKER" in d["modes"], after=mark)
    assert back.data["modes"] == ["SPEAKER", "EARPIECE", "HEADPHONES"]
    async with _timeout(15):  # reopened: a's voice plays on the speaker PCM again
        while not _tone(_tail(replacement), a.tone_hz):
            await _sleep()
    assert b.calls.snapshot()["audio_mode"] == "SPEAKER"
    assert b.calls.session is not None


def _tail(path: Path, seconds: float = 0.2) -> bytes:
    if not path.exists():
        return b""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - int(seconds * 48_000) * 2))
        return f.read()


def _tone(data: bytes, hz: float) -> bool:
    pcm = np.frombuffer(data[-19_200 // 2 * 2 :][: len(data) // 2 * 2], "<i2")
    return len(pcm) >= 4800 and np.abs(pcm).max() > 300 and abs(dominant_frequency(pcm) - hz) < 15


def _timeout(seconds: float) -> Any:
    return asyncio.timeout(seconds)


async def _sleep() -> None:
    await asyncio.sleep(0.05)


# --- the HDMI screen unplugged mid-call ---------------------------------------------------


async def test_the_screen_unplugged_mid_call(screen_kits: Any) -> None:
    a: ScreenKit = await screen_kits("room-a")
    b: ScreenKit = await screen_kits("room-b")
    await a.kit.join("hdmi")
    await b.kit.join("hdmi")
    await a.until(live_tile_shows(a, "room-b", B))

    a.display.unplug()
    shown = a.display.frames_shown
    # The call goes on: media both ways, and the compositor keeps composing (display.png).
    await a.kit.wait_for_video_from("room-b")
    await b.kit.wait_for_video_from("room-a")
    await a.kit.wait_to_hear(b.kit.tone_hz)
    await b.kit.wait_to_hear(a.kit.tone_hz)
    assert live_tile_shows(a, "room-b", B)(a.screen.snapshot_rgb())
    assert a.display.frames_shown == shown  # nothing reached the unplugged screen
    assert not a.screen.display_connected
    assert not a.kit.named("onCallEnded")

    a.display.replug()
    async with asyncio.timeout(15):  # shown again, live
        while a.display.frames_shown <= shown + 2:
            await asyncio.sleep(0.05)
    await a.until(live_tile_shows(a, "room-b", B))
    assert a.screen.display_connected
