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


@runtime_checkable
class HeadsetOutput(Protocol):
    """An output that plays on the headset it is told (bluealsa's PCM for that device)."""

    def use_headset(self, device: BluetoothDevice | None) -> None: ...


class BluetoothAudioPresence:
    """Present while at least one connected device offers audio. Follows the manager's change
    callbacks, which run on the loop; a manager reports every known device when it starts."""

    def __init__(self, bluetooth: Bluetooth, output: PresenceSettable) -> None:
        self._output = output
        self._connected_audio: dict[str, BluetoothDevice] = {}  # in the order they came
        self._unsubscribe = bluetooth.on_change(self._changed)
        output.set_present(False)

    @property
    def connected_audio_devices(self) -> frozenset[str]:
        return frozenset(self._connected_audio)

    def _changed(self, device: BluetoothDevice) -> None:
        self._connected_audio.pop(device.address, None)
        if device.connected and device.audio:
            self._connected_audio[device.address] = device
        if isinstance(self._output, HeadsetOutput):  # the latest headset to connect
            latest = list(self._connected_audio.values())[-1:]
            self._output.use_headset(latest[0] if latest else None)
        self._output.set_present(bool(self._connected_audio))

    def close(self) -> None:
        self._unsubscribe()
