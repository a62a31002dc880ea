"""The Bluetooth route is there while a headset is: tie its presence to the manager.

Works with any ``Bluetooth`` manager and any output that can be told its presence
(``set_present``), so the fake pair now and the BlueZ/bluealsa pair later are wired alike.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hal.bluetooth.base import Bluetooth, BluetoothDevice


@runtime_checkable
class PresenceSettable(Protocol):
    """An output whose presence someone else knows (the Bluetooth sink's comes from BlueZ)."""

    def set_present(self, present: bool) -> None: ...


class BluetoothAudioPresence:
    """Present while at least one connected device offers audio. Follows the manager's change
    callbacks, which run on the loop; a manager reports every known device when it starts."""

    def __init__(self, bluetooth: Bluetooth, output: PresenceSettable) -> None:
        self._output = output
        self._connected_audio: set[str] = set()
        self._unsubscribe = bluetooth.on_change(self._changed)
        output.set_present(False)

    @property
    def connected_audio_devices(self) -> frozenset[str]:
        return frozenset(self._connected_audio)

    def _changed(self, device: BluetoothDevice) -> None:
        if device.connected and device.audio:
            self._connected_audio.add(device.address)
        else:
            self._connected_audio.discard(device.address)
        self._output.set_present(bool(self._connected_audio))

    def close(self) -> None:
        self._unsubscribe()
