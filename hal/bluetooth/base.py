"""Paired Bluetooth audio devices (headsets, speakers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hal.errors import HardwareError


class BluetoothError(HardwareError):
    pass


@dataclass(frozen=True)
class BluetoothDevice:
    address: str  # "AA:BB:CC:DD:EE:FF"
    name: str
    paired: bool
    connected: bool
    audio: bool  # offers A2DP sink or HFP/HSP
    # HFP/HSP without A2DP: plays and captures only over SCO (bluealsa's PROFILE=sco)
    sco_only: bool = False


@runtime_checkable
class Bluetooth(Protocol):
    async def start(self) -> None:
        """Power the adapter and start watching; every known device is then reported once
        through ``on_change``, so subscribers learn what is already connected."""

    async def stop(self) -> None: ...

    async def powered(self) -> bool:
        """Whether the adapter is powered now (the boot self-test asks); raises
        BluetoothError when it cannot tell."""

    async def devices(self) -> list[BluetoothDevice]: ...

    async def connect(self, address: str) -> None: ...

    async def disconnect(self, address: str) -> None: ...

    def on_change(self, callback: Callable[[BluetoothDevice], None]) -> Callable[[], None]:
        """Call ``callback(device)`` on the event loop whenever a device's state changes;
        returns an unsubscribe function."""
