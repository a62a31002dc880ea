"""The hardware self-test, run at start and on ``POST /api/v1/selftest``.

Each device the kit has is checked in turn, independently: the cameras give frames that
are not black; the speaker plays the echo-delay chirp and the microphone hears it at a sane
level; each button's line reads released; each LED blinks once; the screen shows the test
card; the Bluetooth adapter is powered. A failed check is reported (the report is in
``GET /api/v1/health``, the journal, on the screen, and as an LED pattern when there is no
screen) and never stops the kit from taking calls with what works.

The test runs only while the kit is idle: it needs the camera, speaker and microphone a
call would use, and a call that starts meanwhile has the devices from then on (the checks
not yet run are skipped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import av
import numpy as np

from appliance.audio.delay import CHIRP_DBFS, MAX_DELAY_SECONDS, MIN_CONFIDENCE, chirp, locate
from appliance.errors import CallboxError
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioOutput, Microphone, Pcm, Route
from hal.buttons.base import Buttons, LedName, LedState
from hal.camera.base import Camera, EncodingCamera, VideoFormat
from hal.errors import HardwareError
from hal.registry import Hardware

log = logging.getLogger(__name__)

CAMERA_FRAMES = 5  # frames a camera must give
CAMERA_TIMEOUT = 5.0  # seconds for them (a sensor starts in about one)
BLACK_LUMA = 24.0  # mean luma (0-255) below this, with little spread, is a capped lens
BLACK_SPREAD = 6.0
SETTLE_SECONDS = 0.2  # capture before the chirp: the microphone's baseline
ECHO_MIN_DBFS = -60.0  # a chirp heard quieter than this: no speaker, or the mic is deaf
CLIP_LEVEL = 32_000  # a capture peak at this or above is clipping: speaker far too loud
AUDIO_TIMEOUT = 5.0
LED_ON_SECONDS = 0.3
TEST_CARD_SECONDS = 1.5
# The blink code of the first failed device, on the ringing LED, when there is no screen.
BLINK_CODES = {"camera": 1, "audio": 2, "buttons": 3, "screen": 4, "bluetooth": 5}
BLINK_SECONDS = 0.25
BLINK_REPEATS = 3


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    device: str  # "camera fake0", "audio", "buttons", "leds", "screen", "bluetooth"
    kind: str  # the device kind: camera, audio, buttons, leds, screen, bluetooth
    status: Status
    detail: str


@dataclass(frozen=True)
class Report:
    started_at: float  # unix time
    duration_s: float
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != Status.FAILED for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == Status.FAILED]

    def summary(self) -> str:
        """One line for the screen."""
        if self.ok:
            return "Self-test passed"
        return "Self-test: " + "; ".join(f"{c.device}: {c.detail}" for c in self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "checks": [
                {"device": c.device, "kind": c.kind, "status": c.status.value, "detail": c.detail}
                for c in self.checks
            ],
        }


class TestCardScreen(Protocol):
    """The compositor as the self-test uses it."""

    async def show_test_card(self, seconds: float) -> str | None: ...


class SelfTestBusy(CallboxError):
    def __init__(self, message: str) -> None:
        super().__init__("selftest-busy", message, status=409)


@dataclass
class SelfTest:
    hardware: Hardware
    camera_format: VideoFormat = field(default_factory=lambda: VideoFormat(320, 240, 15))
    screen: TestCardScreen | None = None
    busy: Callable[[], bool] = lambda: False  # a call or a ringing: the devices are taken
    on_report: list[Callable[[Report], None]] = field(default_factory=list)
    last: Report | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pattern: asyncio.Task[None] | None = None
    _current: asyncio.Task[tuple[Check, ...]] | None = None
    _yielded: bool = False

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(self) -> Report:
        """Check every device; raises SelfTestBusy while a call has them or a test runs."""
        if self._lock.locked():
            raise SelfTestBusy("a self-test is running")
        if self.busy():
            raise SelfTestBusy("the kit is in a call; try again when it is idle")
        async with self._lock:
            await self._stop_pattern()
            started, clock = time.time(), time.monotonic()
            log.info("self-test: checking the hardware")
            self._yielded = False
            self._current = asyncio.create_task(self._check_all(), name="self-test checks")
            try:
                checks = await self._current
            except asyncio.CancelledError:
                if not self._yielded:
                    raise
                log.info("self-test: a call started; the devices are the call's")
                raise SelfTestBusy("a call started; the self-test gave the devices up") from None
            finally:
                self._current = None
            report = Report(started, time.monotonic() - clock, checks)
            self.last = report
        self._log(report)
        for callback in self.on_report:
            try:
                callback(report)
            except Exception:
                log.exception("self-test: a report subscriber failed")
        return report

    async def yield_devices(self) -> None:
        """A call is starting: a running self-test stops and releases every device (its
        report is not kept), and the blink code stops."""
        await self._stop_pattern()
        task = self._current
        if task is not None and not task.done():
            self._yielded = True
            task.cancel()
            await asyncio.wait({task})

    async def close(self) -> None:
        await self.yield_devices()

    async def _check_all(self) -> tuple[Check, ...]:
        groups = await asyncio.gather(
            self._cameras(),
            self._guarded("audio", "audio", self._audio),
            self._guarded("buttons", "buttons", self._buttons),
            self._guarded("leds", "leds", self._leds),
            self._guarded("screen", "screen", self._screen),
            self._guarded("bluetooth", "bluetooth", self._bluetooth),
        )
        return tuple(check for group in groups for check in group)

    # --- the checks --------------------------------------------------------------------

    async def _guarded(
        self, device: str, kind: str, check: Callable[[], Awaitable[tuple[Status, str]]]
    ) -> list[Check]:
        if self.busy():
            return [Check(device, kind, Status.SKIPPED, "a call started; not checked")]
        try:
            status, detail = await check()
        except HardwareError as err:
            status, detail = Status.FAILED, err.message
        except Exception as err:  # a driver's own error type: still a failed check
            log.debug("self-test: %s", device, exc_info=True)
            status, detail = Status.FAILED, f"{type(err).__name__}: {err}"
        return [Check(device, kind, status, detail)]

    async def _cameras(self) -> list[Check]:
        cameras = self.hardware.cameras
        if not cameras:
            return [Check("camera", "camera", Status.SKIPPED, self._absent("camera"))]
        checks: list[Check] = []
        for camera in cameras:

            async def check(camera: Camera = camera) -> tuple[Status, str]:
                return await self._camera(camera)

            checks += await self._guarded(f"camera {camera.info.id}", "camera", check)
        return checks

    async def _camera(self, camera: Camera) -> tuple[Status, str]:
        if camera.is_open:
            return Status.SKIPPED, "in use"
        await camera.open(self.camera_format)
        pump: asyncio.Task[None] | None = None
        try:
            frames: list[av.VideoFrame] = []
            if isinstance(camera, EncodingCamera) and camera.info.output == "h264":
                pump = asyncio.create_task(_drain(camera), name="self-test camera packets")

                async def next_frame() -> av.VideoFrame:
                    return await camera.read_preview()
            else:

                async def next_frame() -> av.VideoFrame:
                    item = await camera.read()
                    if not isinstance(item, av.VideoFrame):
                        raise HardwareError("camera", "gave packets, not frames")
                    return item

            try:
                async with asyncio.timeout(CAMERA_TIMEOUT):
                    while len(frames) < CAMERA_FRAMES:
                        frames.append(await next_frame())
            except TimeoutError:
                if not frames:
                    return Status.FAILED, f"no frames in {CAMERA_TIMEOUT:g} s"
                return Status.FAILED, f"only {len(frames)} frames in {CAMERA_TIMEOUT:g} s"
            mean, spread = _luma(frames[-1])
            if mean < BLACK_LUMA and spread < BLACK_SPREAD:
                return Status.FAILED, f"black picture (brightness {mean:.0f}/255): lens covered?"
            size = f"{frames[-1].width}x{frames[-1].height}"
            return Status.OK, f"{len(frames)} frames {size}, brightness {mean:.0f}/255"
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, HardwareError):
                    await pump
            with contextlib.suppress(HardwareError):
                await camera.close()

    async def _audio(self) -> tuple[Status, str]:
        microphone = self.hardware.microphone
        output = _loudspeaker(self.hardware.outputs)
        if microphone is None or output is None:
            return Status.SKIPPED, self._absent("audio")
        if microphone.is_open:
            return Status.SKIPPED, "the microphone is in use"
        if not getattr(microphone, "echo_path", True):  # the fake, unless told otherwise
            return Status.SKIPPED, "the fake microphone hears no speaker (hal.audio.fake_echo_db)"
        async with asyncio.timeout(AUDIO_TIMEOUT):
            return await _chirp_check(microphone, output)

    async def _buttons(self) -> tuple[Status, str]:
        buttons = self.hardware.buttons
        if buttons is None:
            return Status.SKIPPED, self._absent("buttons")
        lines = await asyncio.to_thread(buttons.pressed)
        held = sorted(name.value for name, down in lines.items() if down)
        if held:
            return Status.FAILED, f"{', '.join(held)} read pressed: stuck, or shorted to ground"
        return Status.OK, f"{', '.join(sorted(n.value for n in lines))} released"

    async def _leds(self) -> tuple[Status, str]:
        buttons = self.hardware.buttons
        if buttons is None or not buttons.leds():
            return Status.SKIPPED, "no LEDs configured"
        leds = buttons.leds()
        await _blink_once(buttons, leds)
        return Status.OK, f"{', '.join(led.value for led in leds)} blinked once"

    async def _screen(self) -> tuple[Status, str]:
        if self.hardware.display is None or self.screen is None:
            return Status.SKIPPED, self._absent("display")
        problem = await self.screen.show_test_card(TEST_CARD_SECONDS)
        if problem is not None:
            return Status.FAILED, problem
        return Status.OK, "showed the test card"

    async def _bluetooth(self) -> tuple[Status, str]:
        bluetooth = self.hardware.bluetooth
        if bluetooth is None:
            return Status.SKIPPED, self._absent("bluetooth")
        if not await bluetooth.powered():
            return Status.FAILED, "the adapter is not powered (rfkill, or switched off)"
        return Status.OK, "adapter powered"

    def _absent(self, kind: str) -> str:
        how = self.hardware.kinds.get(kind)
        return "disabled in config" if how == "disabled" else "none on this kit"

    # --- telling people ----------------------------------------------------------------

    def _log(self, report: Report) -> None:
        for check in report.checks:
            level = logging.WARNING if check.status == Status.FAILED else logging.INFO
            log.log(level, "self-test: %s %s: %s", check.device, check.status.value, check.detail)
        if report.ok:
            log.info("self-test passed in %.1f s", report.duration_s)
        else:
            names = ", ".join(check.device for check in report.failed)
            log.warning("self-test FAILED: %s (calls go on with what works)", names)

    def show_blink_code(self, report: Report) -> None:
        """With no screen to show it, the first failed device's code on the ringing LED
        (``BLINK_CODES``: that many blinks, three times over), while the kit stays idle."""
        buttons = self.hardware.buttons
        failed = [c.kind for c in report.failed if c.kind in BLINK_CODES]
        if buttons is None or LedName.RINGING not in buttons.leds() or not failed:
            return
        code = BLINK_CODES[failed[0]]
        self._pattern = asyncio.create_task(self._blink_code(buttons, code), name="blink code")

    async def _blink_code(self, buttons: Buttons, code: int) -> None:
        led = LedName.RINGING
        before = buttons.led_state(led)
        try:
            for _ in range(BLINK_REPEATS):
                for _ in range(code):
                    if self.busy():
                        return  # the call's own LEDs from now on
                    buttons.set_led(led, LedState.ON)
                    await asyncio.sleep(BLINK_SECONDS)
                    buttons.set_led(led, LedState.OFF)
                    await asyncio.sleep(BLINK_SECONDS)
                await asyncio.sleep(BLINK_SECONDS * 4)
        except HardwareError as err:
            log.warning("self-test: cannot show the blink code: %s", err.message)
        finally:
            if not self.busy():
                with contextlib.suppress(HardwareError):
                    buttons.set_led(led, before)

    async def _stop_pattern(self) -> None:
        task, self._pattern = self._pattern, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _blink_once(buttons: Buttons, leds: list[LedName]) -> None:
    """Each LED goes on (off first, if it was on) and back to what it showed. An LED that
    something else set meanwhile (a call ringing in) is left as that set it."""
    before = {led: buttons.led_state(led) for led in leds}
    ours = dict(before)

    def show(led: LedName, state: LedState) -> None:
        buttons.set_led(led, state)
        ours[led] = state

    try:
        for led in leds:
            if before[led] != LedState.OFF:
                show(led, LedState.OFF)
        await asyncio.sleep(LED_ON_SECONDS / 2)
        for led in leds:
            if buttons.led_state(led) == ours[led]:
                show(led, LedState.ON)
        await asyncio.sleep(LED_ON_SECONDS)
    finally:
        for led in leds:
            if buttons.led_state(led) != ours[led]:
                continue  # not ours any more
            with contextlib.suppress(HardwareError):
                buttons.set_led(led, LedState.OFF)
                buttons.set_led(led, before[led])


async def _drain(camera: Camera) -> None:
    """An encoding camera streams its preview only while its packets are read."""
    while True:
        await camera.read()


def _luma(frame: av.VideoFrame) -> tuple[float, float]:
    gray = frame.reformat(format="gray").to_ndarray()
    return float(np.mean(gray)), float(np.std(gray))


def _loudspeaker(outputs: dict[Route, AudioOutput]) -> AudioOutput | None:
    """The route whose sound reaches the kit's own microphone: the speaker, else the
    earpiece; headphones and headsets never echo."""
    for route in (Route.SPEAKER, Route.EARPIECE):
        output = outputs.get(route)
        if output is not None and output.present:
            return output
    return None


async def _chirp_check(microphone: Microphone, output: AudioOutput) -> tuple[Status, str]:
    """Play the echo-delay chirp and find it in what the microphone captured."""
    sound = chirp()
    loop = asyncio.get_running_loop()
    blocks: list[Pcm] = []
    capture_started: list[float] = []
    await microphone.open()
    try:
        await output.open()
        try:

            async def capture() -> None:
                while True:
                    pcm = await microphone.read()
                    if not capture_started:
                        capture_started.append(loop.time() - len(pcm) / SAMPLE_RATE)
                    blocks.append(pcm)

            capturing = asyncio.create_task(capture(), name="self-test capture")
            try:
                await asyncio.sleep(SETTLE_SECONDS)
                played_at = loop.time()
                padded = np.concatenate(
                    (sound, np.zeros(-len(sound) % FRAME_SAMPLES, dtype=np.int16))
                )
                tail = math.ceil(MAX_DELAY_SECONDS * SAMPLE_RATE / FRAME_SAMPLES) + 2
                silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
                chunks = [*np.split(padded, len(padded) // FRAME_SAMPLES), *[silence] * tail]
                for index, chunk in enumerate(chunks):
                    await output.write(np.ascontiguousarray(chunk))
                    # Paced like a device: one period every 20 ms.
                    delay = played_at + (index + 1) * FRAME_SAMPLES / SAMPLE_RATE - loop.time()
                    await asyncio.sleep(max(0.0, delay))
            finally:
                capturing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await capturing  # a microphone that failed raises its error here
        finally:
            with contextlib.suppress(HardwareError):
                await output.close()
    finally:
        with contextlib.suppress(HardwareError):
            await microphone.close()
    if not blocks:
        return Status.FAILED, "the microphone gave nothing"
    captured = np.concatenate(blocks)
    if len(captured) < len(sound):
        return Status.FAILED, "the microphone gave too little"
    peak = int(np.max(np.abs(captured.astype(np.int32))))
    found = locate(sound, captured)
    if found.confidence < MIN_CONFIDENCE:
        return Status.FAILED, (
            f"the microphone did not hear the speaker's chirp (correlation {found.confidence:.2f})"
        )
    segment = captured[found.offset : found.offset + len(sound)].astype(np.float64)
    reference = sound.astype(np.float64)
    gain = abs(float(np.dot(segment, reference)) / float(np.dot(reference, reference)))
    level = CHIRP_DBFS + 20 * math.log10(max(gain, 1e-9))
    delay_ms = (found.offset / SAMPLE_RATE - (played_at - capture_started[0])) * 1000
    if peak >= CLIP_LEVEL:
        return Status.FAILED, f"the microphone clips (peak {peak}): the speaker is too loud"
    if level < ECHO_MIN_DBFS:
        return Status.FAILED, f"the chirp came back too quiet ({level:.0f} dBFS)"
    return Status.OK, f"chirp heard at {level:.0f} dBFS, {max(0.0, delay_ms):.0f} ms after playing"
