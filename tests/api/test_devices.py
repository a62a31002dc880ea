"""Devices over REST: cameras, audio routes, Bluetooth."""

from typing import cast

from appliance.daemon import Daemon
from hal.bluetooth.fake import FakeBluetooth
from tests.api.daemon import Api

HEADSET = "AA:BB:CC:DD:EE:01"


async def test_cameras_and_audio_routes(kit: Daemon, api: Api) -> None:
    assert kit.hardware is not None and kit.calls is not None
    cameras = (await api.ok("GET", "/devices/cameras"))["cameras"]
    assert [c["id"] for c in cameras] == [c.info.id for c in kit.hardware.cameras]
    assert [c["current"] for c in cameras] == [True] + [False] * (len(cameras) - 1)

    routes = await api.ok("GET", "/devices/audio-routes")
    assert routes == {"available": ["SPEAKER", "EARPIECE"], "current": "SPEAKER"}
    routes = await api.ok("PUT", "/devices/audio-routes/current", {"mode": "EARPIECE"})
    assert routes["current"] == "EARPIECE"
    assert kit.calls.router.current is not None and kit.calls.router.current.value == "EARPIECE"
    status, reply = await api.call("PUT", "/devices/audio-routes/current", {"mode": "BLUETOOTH"})
    assert (status, reply["error"]["code"]) == (409, "audio-mode-unavailable")


async def test_bluetooth_connect_and_disconnect(kit: Daemon, api: Api) -> None:
    assert kit.hardware is not None and kit.calls is not None
    bluetooth = cast(FakeBluetooth, kit.hardware.bluetooth)
    if not bluetooth.started:
        await bluetooth.start()
    bluetooth.add_device(HEADSET, "Headset")
    listed = await api.ok("GET", "/devices/bluetooth")
    assert listed == {
        "available": True,
        "devices": [
            {
                "address": HEADSET,
                "name": "Headset",
                "paired": True,
                "connected": False,
                "audio": True,
            }
        ],
    }
    listed = await api.ok("POST", f"/devices/bluetooth/{HEADSET.lower()}/connect")
    assert listed["devices"][0]["connected"] is True
    assert bluetooth.connects == [HEADSET]
    routes = await api.ok("GET", "/devices/audio-routes")
    assert "BLUETOOTH" in routes["available"]
    listed = await api.ok("POST", f"/devices/bluetooth/{HEADSET}/disconnect")
    assert listed["devices"][0]["connected"] is False

    status, reply = await api.call("POST", "/devices/bluetooth/AA:BB:CC:DD:EE:99/connect")
    assert (status, reply["error"]["code"]) == (409, "device-error")
    status, reply = await api.call("POST", "/devices/bluetooth/not-an-address/connect")
    assert (status, reply["error"]["field"]) == (422, "address")
