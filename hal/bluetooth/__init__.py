from hal.bluetooth.base import Bluetooth, BluetoothDevice, BluetoothError

__all__ = ["Bluetooth", "BluetoothDevice", "BluetoothError"]
