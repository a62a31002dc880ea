"""Buttons on the Raspberry Pi's GPIO header, through lgpio (the default on current Pi OS)."""

from __future__ import annotations

from hal.buttons.gpio import GpioButtons
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity


def create(config: HalConfig, kit: KitIdentity) -> GpioButtons:
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:  # lgpio comes from Raspberry Pi OS (python3-lgpio)
        raise HardwareError("buttons", f"GPIO library missing: {exc}") from exc
    try:
        factory = LGPIOFactory()
    except Exception as exc:  # no /dev/gpiochip*, no permission, not a Pi
        raise HardwareError("buttons", f"cannot open the GPIO chip: {exc}") from exc
    return GpioButtons(config.buttons, factory)
