"""Errors every device kind shares."""

from __future__ import annotations


class HardwareError(Exception):
    """A device failed or is missing. ``device`` names it, as config and logs do."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message


class DeviceGone(HardwareError):
    """The device vanished while in use (unplugged, out of range, driver error)."""
