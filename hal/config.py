"""Which driver each device uses, and its settings. Part of callbox's config ([hal])."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backend = Literal["auto", "real", "fake", "disabled"]

# The Pi 4's H.264 encoder does at most 1080p30: 1920x1080 in 16x16 macroblocks, 30 a second.
MAX_MACROBLOCK_RATE = 120 * 68 * 30


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceConfig(Section):
    backend: Backend | None = None  # None: follow [hal] backend


class CameraConfig(DeviceConfig):
    width: int = Field(640, ge=160, le=1920)
    height: int = Field(480, ge=120, le=1080)
    fps: int = Field(30, ge=1, le=60)
    keyframe_interval: int = Field(60, ge=1, le=600)  # frames, for hardware H.264
    devices: list[str] = Field(default_factory=list)  # empty: every camera found
    # The fake camera's background colour ("#rrggbb"); default: derived from the kit's uid.
    fake_colour: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    # What the fake cameras give: frames, or H.264 packets like a Pi 4's hardware encoder.
    fake_output: Literal["frames", "h264"] = "frames"

    @model_validator(mode="after")
    def _within_the_encoder(self) -> CameraConfig:
        blocks = ((self.width + 15) // 16) * ((self.height + 15) // 16)
        if blocks * self.fps > MAX_MACROBLOCK_RATE:
            raise ValueError(
                f"{self.width}x{self.height} at {self.fps} fps is more than the Pi 4's H.264 "
                "encoder does (at most 1920x1080 at 30 fps, or as many pixels a second at a "
                "smaller size): lower width, height or fps"
            )
        return self


class AudioConfig(DeviceConfig):
    capture: str = "default"  # ALSA PCM names
    speaker: str = "default"
    earpiece: str | None = None
    headphones: str | None = None
    bluetooth: str = "bluealsa"
    # The fake microphone's tone; default: derived from the kit's uid (300-1250 Hz).
    fake_tone_hz: float | None = Field(None, ge=100, le=4000)
    # The fake microphone hears the fake speaker and earpiece this much louder (dB; None:
    # it hears nothing of them, the default), this many milliseconds later.
    fake_echo_db: float | None = Field(None, ge=-80, le=30)
    fake_echo_ms: float = Field(30.0, ge=0, le=500)


class ButtonsConfig(DeviceConfig):
    mute: int = Field(17, ge=0, le=53)  # BCM pin numbers
    pause: int = Field(27, ge=0, le=53)
    end: int = Field(22, ge=0, le=53)
    led_muted: int | None = Field(23, ge=0, le=53)
    led_in_call: int | None = Field(24, ge=0, le=53)
    led_ringing: int | None = Field(25, ge=0, le=53)
    bounce_ms: int = Field(30, ge=0, le=1000)
    long_press_s: float = Field(1.5, gt=0, le=10)


class DisplayConfig(DeviceConfig):
    width: int = Field(1920, ge=320, le=3840)
    height: int = Field(1080, ge=240, le=2160)
    fps: int = Field(30, ge=1, le=60)
    framebuffer: str = "/dev/fb0"


class BluetoothConfig(DeviceConfig):
    pass


class InputConfig(DeviceConfig):
    """Touch screens and mice, for the on-screen buttons and tiles."""

    devices: list[str] = Field(default_factory=list)  # names or /dev/input paths; empty: all
    mouse_speed: float = Field(1.0, gt=0, le=10)
    fake_mouse: bool = False  # the fake device acts as a mouse (shows a cursor)


class HalConfig(Section):
    backend: Backend = "auto"
    camera: CameraConfig = CameraConfig()
    audio: AudioConfig = AudioConfig()
    bluetooth: BluetoothConfig = BluetoothConfig()
    buttons: ButtonsConfig = ButtonsConfig()
    display: DisplayConfig = DisplayConfig()
    input: InputConfig = InputConfig()

    def backend_for(self, device: str) -> Backend:
        section: DeviceConfig = getattr(self, device)
        return section.backend or self.backend
