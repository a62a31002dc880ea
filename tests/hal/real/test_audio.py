"""The real ALSA driver against real alsa-lib: a test asound.conf (file and null plugins)
gives each route a file the test reads back, and the microphone a file of known samples."""

from __future__ import annotations

import asyncio
import errno
import os
import struct
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import alsaaudio
import numpy as np
import pytest
from packaging.version import Version

from appliance.media.remote import AudioMixer
from appliance.media.routes import AudioRouter
from hal.audio.alsa_pcm import AudioDeviceGone, open_pcm
from hal.audio.base import FRAME_SAMPLES, AudioError, AudioOutput, Microphone, Route
from hal.audio.capture import CAPTURE_BUFFER, MAX_STALLS, AlsaMicrophone
from hal.audio.jack import EV_SW, EVENT, SW_HEADPHONE_INSERT, eviocgsw, find_headphone_jack
from hal.audio.pcm import dominant_frequency, tone
from hal.audio.real import PREFILL, AlsaOutput, create
from hal.config import HalConfig
from hal.errors import DeviceGone, HardwareError
from hal.kit import KitIdentity
from tests.hal.real.alsa import PCMS, AlsaSetup, write_alsa_config
from tests.hal.real.conftest import MIC_HZ
from tests.kits import KitFactory

KIT = KitIdentity("room-b", "Room B")


def config(setup: AlsaSetup, **audio: Any) -> HalConfig:
    return HalConfig.model_validate({"audio": setup.hal_audio(**audio)})


async def play(output: AudioOutput, frames: list[np.ndarray[Any, Any]]) -> None:
    """Write like the mixer does, a period at a time as the device takes them (the
    file and null plugins take them at once; a card would take one per 20 ms)."""
    assert isinstance(output, AlsaOutput)
    for pcm in frames:
        played = output.periods_played
        await output.write(pcm)
        async with asyncio.timeout(5):
            while output.periods_played == played:
                await asyncio.sleep(0.001)
    assert output.dropped == 0


async def test_each_route_plays_exactly_what_it_was_given(alsa_setup: AlsaSetup) -> None:
    devices = create(config(alsa_setup), KIT)
    assert set(devices.outputs) == {
        Route.SPEAKER,
        Route.EARPIECE,
        Route.HEADPHONES,
        Route.BLUETOOTH,
    }
    sent: dict[Route, np.ndarray[Any, Any]] = {}
    for index, route in enumerate((Route.SPEAKER, Route.EARPIECE, Route.HEADPHONES)):
        output = devices.outputs[route]
        assert isinstance(output, AudioOutput)
        assert output.present  # no jack detection on this "card": always offered
        await output.open()
        frames = list(tone(400 + 200 * index, frames=25))
        await play(output, frames)
        await output.close()
        sent[route] = np.concatenate(frames)
    for route, samples in sent.items():
        played = alsa_setup.played(route.value.lower())
        # A little silence first (against loop jitter), then every sample, in order.
        assert np.array_equal(played[: PREFILL * FRAME_SAMPLES], np.zeros(PREFILL * FRAME_SAMPLES))
        assert np.array_equal(played[PREFILL * FRAME_SAMPLES :], samples)
    assert not alsa_setup.output_file("bluetooth").exists()  # never opened


async def test_the_bluetooth_route_plays_only_while_a_headset_is_there(
    alsa_setup: AlsaSetup,
) -> None:
    output = create(config(alsa_setup), KIT).outputs[Route.BLUETOOTH]
    assert isinstance(output, AlsaOutput)
    assert not output.present
    with pytest.raises(AudioError, match="no device connected"):
        await output.open()
    output.set_present(True)
    await output.open()
    frames = list(tone(900, frames=10))
    await play(output, frames)
    await output.close()
    played = alsa_setup.played("bluetooth")
    assert np.array_equal(played[PREFILL * FRAME_SAMPLES :], np.concatenate(frames))


async def test_the_microphone_captures_the_device_in_20_ms_periods(alsa_setup: AlsaSetup) -> None:
    microphone = create(config(alsa_setup), KIT).microphone
    assert isinstance(microphone, Microphone)
    with pytest.raises(AudioError, match="not open"):
        await microphone.read()
    await microphone.open()
    with pytest.raises(AudioError, match="already open"):
        await microphone.open()
    captured = [await microphone.read() for _ in range(50)]
    await microphone.close()
    await microphone.close()
    assert {(p.dtype, p.shape) for p in captured} == {(np.dtype(np.int16), (FRAME_SAMPLES,))}
    got = np.concatenate(captured)
    assert np.array_equal(got, alsa_setup.mic_samples[: len(got)])  # every sample, in order
    assert abs(dominant_frequency(got) - MIC_HZ) < 2
    assert not microphone.is_open


async def test_missing_pcms_are_start_up_errors_naming_them(alsa_setup: AlsaSetup) -> None:
    with pytest.raises(HardwareError) as raised:
        create(config(alsa_setup, earpiece="no_such_pcm"), KIT)
    assert raised.value.device == "audio"
    assert "earpiece route" in str(raised.value)
    assert "no_such_pcm" in str(raised.value)
    with pytest.raises(HardwareError, match=r"microphone: .*'nothing_here'"):
        create(config(alsa_setup, capture="nothing_here"), KIT)
    # Optional routes left out are simply not there.
    devices = create(config(alsa_setup, earpiece=None, headphones=None), KIT)
    assert set(devices.outputs) == {Route.SPEAKER, Route.BLUETOOTH}


# --- the default microphone on Raspberry Pi OS Lite ---------------------------------------

PI_OS_LITE_CARDS = {
    # index: (id, driver, name, PCM devices: "p" plays, "c" captures)
    0: ("Headphones", "bcm2835_headpho", "bcm2835 Headphones", ["pcm0p"]),
    1: ("vc4hdmi0", "vc4-hdmi", "vc4-hdmi-0", ["pcm0p"]),
    2: ("seeed2micvoicec", "seeed-voicecard", "seeed-2mic-voicecard", ["pcm0p", "pcm0c"]),
    3: ("Speakerphone", "USB-Audio", "Jabra SPEAK 510 USB", ["pcm0p", "pcm0c"]),
}


def proc_asound(root: Path, cards: dict[int, tuple[str, str, str, list[str]]]) -> Path:
    """/proc/asound as the kernel lays it out: ``cards``, and a cardN/pcmD[pc] per PCM."""
    lines = []
    for index, (card_id, driver, name, pcms) in cards.items():
        lines += [f"{index:2d} [{card_id:<15}]: {driver} - {name}", f"                      {name}"]
        for pcm in pcms:
            (root / f"card{index}" / pcm).mkdir(parents=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "cards").write_text("\n".join(lines) + "\n")
    return root


def alsa_cards_config(root: Path, mic: np.ndarray[Any, Any], cards: list[str]) -> Path:
    """alsa-lib's own plughw:CARD=...,DEV=... (its arguments and all), each card's capture
    reading its own file; ``default`` is card 0's hardware, which cannot open here, as it
    cannot capture on a Pi."""
    root.mkdir(parents=True, exist_ok=True)
    for card in cards:
        mic.astype("<i2").tofile(root / f"mic-{card}.raw")
    (root / "asound.conf").write_text(
        f"""pcm.null {{ type null }}
pcm.default {{ type hw card 0 }}
pcm.test_speaker {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
pcm.plughw {{
    @args [ CARD DEV ]
    @args.CARD {{ type string }}
    @args.DEV {{ type integer default 0 }}
    type file
    slave.pcm "null"
    file "/dev/null"
    infile {{ @func concat strings [ "{root}/mic-" $CARD ".raw" ] }}
    format "raw"
}}
"""
    )
    return root / "asound.conf"


async def test_a_default_microphone_that_cannot_capture_becomes_the_usb_speakerphone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mic = np.concatenate(list(tone(620, level_dbfs=-10, frames=50)))
    conf = alsa_cards_config(tmp_path / "alsa", mic, ["seeed2micvoicec", "Speakerphone"])
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    proc = proc_asound(tmp_path / "proc", PI_OS_LITE_CARDS)
    settings = HalConfig.model_validate({"audio": {"backend": "real", "speaker": "test_speaker"}})
    assert settings.audio.capture == "default"
    caplog.set_level("INFO")
    devices = create(settings, KIT, proc=proc)
    microphone = devices.microphone
    assert isinstance(microphone, AlsaMicrophone)
    assert microphone.device == "plughw:CARD=Speakerphone,DEV=0"
    assert any("Speakerphone" in r.getMessage() for r in caplog.records)
    await microphone.open()
    try:
        got = np.concatenate([await microphone.read() for _ in range(5)])
    finally:
        await microphone.close()
    assert np.array_equal(got, mic[: len(got)])


async def test_a_default_microphone_falls_back_to_the_first_card_that_captures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mic = np.concatenate(list(tone(620, frames=10)))
    conf = alsa_cards_config(tmp_path / "alsa", mic, ["seeed2micvoicec"])
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    cards = {i: card for i, card in PI_OS_LITE_CARDS.items() if i != 3}
    settings = HalConfig.model_validate({"audio": {"backend": "real", "speaker": "test_speaker"}})
    devices = create(settings, KIT, proc=proc_asound(tmp_path / "proc", cards))
    assert devices.microphone.device == "plughw:CARD=seeed2micvoicec,DEV=0"  # type: ignore[attr-defined]


async def test_no_card_that_captures_is_an_error_naming_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = alsa_cards_config(tmp_path / "alsa", np.zeros(960, np.int16), [])
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    cards = {i: card for i, card in PI_OS_LITE_CARDS.items() if i < 2}
    settings = HalConfig.model_validate({"audio": {"backend": "real", "speaker": "test_speaker"}})
    with pytest.raises(HardwareError) as raised:
        create(settings, KIT, proc=proc_asound(tmp_path / "proc", cards))
    message = str(raised.value)
    assert raised.value.device == "audio"
    assert "default PCM cannot capture" in message
    assert "0 Headphones (bcm2835 Headphones)" in message
    assert '[hal.audio] capture = "plughw:CARD=<card>,DEV=0"' in message


async def test_refusals(alsa_setup: AlsaSetup) -> None:
    output = create(config(alsa_setup), KIT).outputs[Route.SPEAKER]
    with pytest.raises(AudioError, match="not open"):
        await output.write(np.zeros(FRAME_SAMPLES, np.int16))
    await output.open()
    with pytest.raises(ValueError, match="int16"):
        await output.write(np.zeros(FRAME_SAMPLES, np.float32))  # type: ignore[arg-type]
    await output.close()


# --- xruns: real alsa-lib has none to give with these plugins (and there is no sound card
# here), so one is scripted, as the installed pyalsaaudio reports it ----------------------

INSTALLED_PYALSAAUDIO = Version(version("pyalsaaudio"))
# pyalsaaudio 0.11 stopped raising on an underrun: write() re-prepares the PCM and returns
# -EPIPE, as read() does on an overrun (its CHANGES.md, #130). 0.10 raised "Broken pipe".
WRITE_RETURNS_EPIPE = Version("0.11")


class XrunOnce:
    """alsaaudio, except that its PCMs hit one xrun as a real card does: from write, the
    installed pyalsaaudio's way (``returns`` -EPIPE from 0.11, else raises "Broken pipe"
    with the PCM left in XRUN until the next call re-prepares it); from read, -EPIPE."""

    def __init__(self, at_call: int, *, write_returns_epipe: bool | None = None) -> None:
        self.at_call = at_call
        self.returns = (
            INSTALLED_PYALSAAUDIO >= WRITE_RETURNS_EPIPE
            if write_returns_epipe is None
            else write_returns_epipe
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(alsaaudio, name)

    def PCM(self, **kwargs: Any) -> Any:
        return _XrunPcm(alsaaudio.PCM(**kwargs), self.at_call, self.returns)


class _XrunPcm:
    def __init__(self, pcm: Any, at_call: int, returns: bool) -> None:
        self._pcm, self._at, self._calls, self._xrun = pcm, at_call, 0, False
        self._returns = returns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pcm, name)

    def state(self) -> int:
        return int(alsaaudio.PCM_STATE_XRUN) if self._xrun else int(self._pcm.state())

    def _trip(self) -> bool:
        self._calls += 1
        self._xrun = self._calls == self._at
        return self._xrun

    def write(self, data: bytes) -> int:
        if self._trip():
            if self._returns:  # re-prepared already, nothing written
                self._xrun = False
                return -errno.EPIPE
            raise alsaaudio.ALSAAudioError("Broken pipe [test]")
        return int(self._pcm.write(data))

    def read(self) -> tuple[int, bytes]:
        if self._trip():
            return -errno.EPIPE, b""
        length, data = self._pcm.read()
        return int(length), bytes(data)


def test_the_installed_pyalsaaudio_write_returns_what_it_wrote(alsa_setup: AlsaSetup) -> None:
    """Real alsa-lib: write() gives the frames written, the count an -EPIPE replaces."""
    assert Version("0.10") <= INSTALLED_PYALSAAUDIO
    pcm = open_pcm(alsaaudio, False, PCMS["speaker"], "test")
    try:
        assert pcm.write(bytes(2 * FRAME_SAMPLES)) == FRAME_SAMPLES
    finally:
        pcm.close()


@pytest.mark.parametrize(
    "write_returns_epipe",
    [None, True, False],
    ids=[f"installed-{INSTALLED_PYALSAAUDIO}", "returns-EPIPE-0.11", "raises-0.10"],
)
async def test_an_underrun_is_recovered_and_counted_without_losing_audio(
    alsa_setup: AlsaSetup, write_returns_epipe: bool | None
) -> None:
    alsa = XrunOnce(at_call=PREFILL + 3, write_returns_epipe=write_returns_epipe)
    output = AlsaOutput(alsa, Route.SPEAKER, PCMS["speaker"])
    await output.open()
    frames = list(tone(500, frames=10))
    await play(output, frames)
    await output.close()
    assert output.xruns == 1
    played = alsa_setup.played("speaker")
    assert np.array_equal(played[PREFILL * FRAME_SAMPLES :], np.concatenate(frames))


async def test_an_overrun_is_recovered_and_counted(alsa_setup: AlsaSetup) -> None:
    microphone = AlsaMicrophone(XrunOnce(at_call=3), PCMS["capture"])
    await microphone.open()
    got = np.concatenate([await microphone.read() for _ in range(10)])
    await microphone.close()
    assert microphone.xruns == 1
    assert np.array_equal(got, alsa_setup.mic_samples[: len(got)])


class RoundedPeriods:
    """alsaaudio, except that its PCMs run at another period size than the one asked for,
    as a card rounds it; counts the frames read from the device."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.frames_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(alsaaudio, name)

    def PCM(self, **kwargs: Any) -> Any:
        return _CountingPcm(alsaaudio.PCM(**{**kwargs, "periodsize": self.period}), self)


class _CountingPcm:
    def __init__(self, pcm: Any, alsa: RoundedPeriods) -> None:
        self._pcm, self._alsa = pcm, alsa

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pcm, name)

    def read(self) -> tuple[int, bytes]:
        length, data = self._pcm.read()
        self._alsa.frames_read += max(0, int(length))
        return int(length), bytes(data)


@pytest.mark.parametrize("period", [480, 1024, 2048])
async def test_a_card_with_another_period_size_gives_every_sample_without_a_growing_delay(
    alsa_setup: AlsaSetup, period: int
) -> None:
    alsa = RoundedPeriods(period)
    microphone = AlsaMicrophone(alsa, PCMS["capture"])
    await microphone.open()
    got = np.concatenate([await microphone.read() for _ in range(400)])
    held = alsa.frames_read - len(got)  # read from the card, not yet handed on
    await microphone.close()
    assert np.array_equal(got, alsa_setup.mic_samples[: len(got)])  # every sample, in order
    # Only what waits for the reader (its buffer of blocks) and less than a period; not a
    # little more with every read.
    assert held <= (CAPTURE_BUFFER + 1) * FRAME_SAMPLES + period, held


class StallingCapture:
    """alsaaudio, except that reads on its capture PCMs stall as alsa-lib reports a card
    that delivered nothing for longer than its buffer: ALSAAudioError "Input/output error"
    with the PCM still RUNNING. ``stalls`` says which reads (counted over every PCM)."""

    def __init__(self, stalls: set[int] | None = None, *, always: bool = False) -> None:
        self.stalls, self.always, self.reads = stalls or set(), always, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(alsaaudio, name)

    def PCM(self, **kwargs: Any) -> Any:
        return _StallingPcm(alsaaudio.PCM(**kwargs), self)


class _StallingPcm:
    def __init__(self, pcm: Any, alsa: StallingCapture) -> None:
        self._pcm, self._alsa = pcm, alsa

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pcm, name)

    def read(self) -> tuple[int, bytes]:
        self._alsa.reads += 1
        if self._alsa.always or self._alsa.reads in self._alsa.stalls:
            raise alsaaudio.ALSAAudioError(f"{os.strerror(errno.EIO)} [test]")
        length, data = self._pcm.read()
        return int(length), bytes(data)


async def test_a_capture_that_stalls_is_opened_again_and_goes_on(alsa_setup: AlsaSetup) -> None:
    """A stall (alsa-lib's -EIO after waiting a buffer's time: snd-aloop under load did it)
    costs what it lost, counted as an xrun, not the microphone for the rest of the call."""
    microphone = AlsaMicrophone(StallingCapture({3, 9}), PCMS["capture"])
    await microphone.open()
    got = [await microphone.read() for _ in range(10)]
    await microphone.close()
    assert microphone.xruns == 2
    assert microphone.captured_from == [PCMS["capture"]] * 3
    assert all(len(frame) == FRAME_SAMPLES for frame in got)


async def test_a_capture_that_stalls_after_every_open_is_gone(alsa_setup: AlsaSetup) -> None:
    microphone = AlsaMicrophone(StallingCapture(always=True), PCMS["capture"])
    await microphone.open()
    with pytest.raises(AudioDeviceGone, match="Input/output error"):
        await microphone.read()
    await microphone.close()
    assert len(microphone.captured_from) == 1 + MAX_STALLS


# --- a device that disappears -------------------------------------------------------------


@pytest.fixture
def alsa_with_fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlsaSetup]:
    setup = write_alsa_config(tmp_path / "alsa", mic_tone_hz=MIC_HZ, fifo_routes=("headphones",))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(setup.root / "asound.conf"))
    yield setup
    setup.close()


async def test_a_route_that_disappears_falls_back_to_the_speaker(
    alsa_with_fifo: AlsaSetup,
) -> None:
    devices = create(config(alsa_with_fifo), KIT)
    modes: list[list[Route]] = []
    routes: list[Route] = []
    router = AudioRouter(devices.outputs, modes.append, routes.append)
    mixer = AudioMixer(on_output_failed=router.report_failure)
    mixer.start()
    try:
        await router.bind(mixer)
        await router.select(Route.HEADPHONES)
        headphones = alsa_with_fifo.fifos["headphones"]
        async with asyncio.timeout(10):
            while len(headphones.data) < 10 * 2 * FRAME_SAMPLES:
                await asyncio.sleep(0.02)
        headphones.unplug()  # the card goes: writes fail with an I/O error from now on
        async with asyncio.timeout(10):
            while router.current != Route.SPEAKER:
                await asyncio.sleep(0.02)
        assert modes[-1] == [Route.SPEAKER, Route.EARPIECE]
        assert routes == [Route.HEADPHONES, Route.SPEAKER]
        output = devices.outputs[Route.HEADPHONES]
        with pytest.raises(AudioDeviceGone) as gone:
            await output.write(np.zeros(FRAME_SAMPLES, np.int16))
        assert isinstance(gone.value, DeviceGone)
        # The mix now goes to the speaker's PCM.
        async with asyncio.timeout(10):
            while not alsa_with_fifo.output_file("speaker").exists() or (
                alsa_with_fifo.output_file("speaker").stat().st_size < 4 * 2 * FRAME_SAMPLES
            ):
                await asyncio.sleep(0.02)
    finally:
        await router.close()
        await mixer.stop()
        for output in devices.outputs.values():
            await output.close()


# --- the headphone jack -------------------------------------------------------------------


def jack_device(tmp_path: Path) -> tuple[Path, Path]:
    """A made-up /sys with one switch device that reports the headphone jack, and its
    /dev/input node (a FIFO the test writes input events into)."""
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    capabilities = sysfs / "class" / "input" / "event7" / "device" / "capabilities"
    capabilities.mkdir(parents=True)
    (capabilities / "sw").write_text(f"{1 << SW_HEADPHONE_INSERT:x}\n")
    other = sysfs / "class" / "input" / "event3" / "device" / "capabilities"
    other.mkdir(parents=True)
    (other / "sw").write_text("0\n")
    (dev / "input").mkdir(parents=True)
    os.mkfifo(dev / "input" / "event7")
    return sysfs, dev


def switch_event(plugged: bool) -> bytes:
    return EVENT.pack(0, 0, EV_SW, SW_HEADPHONE_INSERT, int(plugged)) + EVENT.pack(0, 0, 0, 0, 0)


async def test_plugging_headphones_switches_the_route_where_the_card_reports_the_jack(
    alsa_setup: AlsaSetup, tmp_path: Path
) -> None:
    sysfs, dev = jack_device(tmp_path)
    assert find_headphone_jack(sysfs, dev) == dev / "input" / "event7"
    devices = create(config(alsa_setup), KIT, sysfs=sysfs, dev=dev)
    headphones = devices.outputs[Route.HEADPHONES]
    assert isinstance(headphones, AlsaOutput)
    assert headphones.jack is not None
    assert not headphones.present  # a FIFO cannot answer EVIOCGSW: taken as unplugged
    modes: list[list[Route]] = []
    routes: list[Route] = []
    router = AudioRouter(devices.outputs, modes.append, routes.append)
    assert router.available == [Route.SPEAKER, Route.EARPIECE]
    writer = await asyncio.to_thread(os.open, dev / "input" / "event7", os.O_WRONLY)
    try:
        os.write(writer, switch_event(True))
        async with asyncio.timeout(5):
            while router.current != Route.HEADPHONES:
                await asyncio.sleep(0.02)
        assert modes[-1] == [Route.SPEAKER, Route.EARPIECE, Route.HEADPHONES]
        os.write(writer, switch_event(False))
        async with asyncio.timeout(5):
            while router.current != Route.SPEAKER:
                await asyncio.sleep(0.02)
        assert modes[-1] == [Route.SPEAKER, Route.EARPIECE]
        assert routes == [Route.HEADPHONES, Route.SPEAKER]
    finally:
        os.close(writer)
        threads = {t.name for t in threading.enumerate()}
        for stop in devices.watchers:  # what Hardware.close() runs
            await stop()
        await router.close()
    assert headphones.jack._thread is None
    assert len({t.name for t in threading.enumerate()}) < len(threads)  # the reader ended


def test_the_switch_ioctl_and_event_layout() -> None:
    # _IOC(_IOC_READ, 'E', 0x1b, 8), and struct input_event with native longs for the time.
    assert eviocgsw(8) == 0x8008451B
    assert struct.calcsize("@ll") + 8 == EVENT.size


# --- a call with a kit on real ALSA audio -------------------------------------------------


@pytest.fixture
def paced_alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlsaSetup]:
    setup = write_alsa_config(
        tmp_path / "alsa", mic_tone_hz=MIC_HZ, fifo_routes=("headphones",), paced_microphone=True
    )
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(setup.root / "asound.conf"))
    yield setup
    setup.close()


def recent_tone(setup: AlsaSetup, route: str, seconds: float = 0.2) -> float:
    played = setup.played(route) if setup.output_file(route).exists() else np.zeros(0)
    tail = played[-int(seconds * 48_000) :]
    if len(tail) < 4800 or np.abs(tail).max() < 300:
        return 0.0
    return dominant_frequency(tail)


async def until_tone(setup: AlsaSetup, route: str, hz: float) -> None:
    async with asyncio.timeout(15):
        while abs(recent_tone(setup, route) - hz) > 15:
            await asyncio.sleep(0.05)


async def test_a_call_on_real_alsa_audio_and_a_card_that_goes_away(
    kits: KitFactory, paced_alsa: AlsaSetup
) -> None:
    a = await kits("room-a")
    b = await kits("room-b", audio=paced_alsa.hal_audio())
    await a.join("alsa")
    await b.join("alsa")
    await a.wait_to_hear(MIC_HZ)  # b's ALSA microphone, heard at a
    await until_tone(paced_alsa, "speaker", a.tone_hz)  # a, played on b's speaker PCM
    mark = len(b.events)
    await b.calls.set_audio_mode("HEADPHONES")
    await until_tone(paced_alsa, "headphones", a.tone_hz)

    paced_alsa.fifos["headphones"].unplug()  # the headphone card disappears mid-call

    changed = await b.wait_for(
        "onAudioModeChanged", lambda d: "HEADPHONES" not in d["modes"], after=mark
    )
    assert changed.data["modes"] == ["SPEAKER", "EARPIECE"]
    assert b.calls.snapshot()["audio_mode"] == "SPEAKER"
    size = paced_alsa.output_file("speaker").stat().st_size
    async with asyncio.timeout(10):
        while paced_alsa.output_file("speaker").stat().st_size < size + 20 * 1920:
            await asyncio.sleep(0.05)
    await until_tone(paced_alsa, "speaker", a.tone_hz)
    assert b.calls.session is not None  # the call goes on
