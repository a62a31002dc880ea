"""Devices: cameras, audio routes, Bluetooth devices."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, Param, body_of, param
from appliance.calls import SessionState
from hal.bluetooth.base import Bluetooth

Address = Annotated[str, Field(pattern=m.BLUETOOTH_ADDRESS)]
DEVICE_ERROR = "The device refused or failed (error.code device-error)"


class DevicesApi:
    def __init__(self, context: ApiContext) -> None:
        self._ctx = context

    def endpoints(self) -> list[Endpoint]:
        address = (Param("address", Address, description="AA:BB:CC:DD:EE:FF"),)
        return [
            Endpoint(
                "GET",
                "/api/v1/devices/cameras",
                self.cameras,
                "Cameras, and which one calls use",
                "devices",
                reply=m.CameraList,
            ),
            Endpoint(
                "GET",
                "/api/v1/devices/audio-routes",
                self.audio_routes,
                "Audio routes available now, and the current one",
                "devices",
                reply=m.AudioRoutes,
            ),
            Endpoint(
                "PUT",
                "/api/v1/devices/audio-routes/current",
                self.select_route,
                "Choose the audio route (in a call or for the next one)",
                "devices",
                body=m.SetAudioMode,
                reply=m.AudioRoutes,
                errors={409: "That route is not available now"},
            ),
            Endpoint(
                "GET",
                "/api/v1/devices/bluetooth",
                self.bluetooth,
                "Known Bluetooth devices",
                "devices",
                reply=m.BluetoothList,
                errors={409: DEVICE_ERROR},
            ),
            *(
                Endpoint(
                    "POST",
                    f"/api/v1/devices/bluetooth/{{address}}/{verb}",
                    handler,
                    f"{verb.capitalize()} a paired Bluetooth device",
                    "devices",
                    reply=m.BluetoothList,
                    params=address,
                    errors={404: "No Bluetooth manager", 409: DEVICE_ERROR},
                )
                for verb, handler in (("connect", self.connect), ("disconnect", self.disconnect))
            ),
        ]

    async def cameras(self, request: web.Request) -> m.CameraList:
        cameras = self._ctx.hardware.cameras
        session = self._ctx.calls.call_snapshot()
        current = session.camera if session is not None else None
        current_id = current.id if current is not None else (cameras[0].info.id if cameras else "")
        return m.CameraList(
            cameras=[
                m.CameraView(
                    id=c.info.id,
                    name=c.info.name,
                    output=c.info.output,
                    current=c.info.id == current_id,
                )
                for c in cameras
            ]
        )

    def _routes(self) -> m.AudioRoutes:
        router = self._ctx.calls.router
        return m.AudioRoutes(available=router.available, current=router.current)

    async def audio_routes(self, request: web.Request) -> m.AudioRoutes:
        return self._routes()

    async def select_route(self, request: web.Request) -> m.AudioRoutes:
        mode = body_of(request, m.SetAudioMode).mode
        calls = self._ctx.calls
        if calls.state == SessionState.ACTIVE:
            await calls.set_audio_mode(mode)  # tells the call's listeners too
        else:
            await calls.router.select(mode)
        return self._routes()

    async def _list(self) -> m.BluetoothList:
        bluetooth = self._ctx.hardware.bluetooth
        if bluetooth is None:
            return m.BluetoothList(available=False, devices=[])
        devices = await bluetooth.devices()
        return m.BluetoothList(
            available=True,
            devices=[
                m.BluetoothDeviceView(
                    address=d.address,
                    name=d.name,
                    paired=d.paired,
                    connected=d.connected,
                    audio=d.audio,
                )
                for d in devices
            ],
        )

    async def bluetooth(self, request: web.Request) -> m.BluetoothList:
        return await self._list()

    async def connect(self, request: web.Request) -> m.BluetoothList:
        await self._manager().connect(param(request, "address", str).upper())
        return await self._list()

    async def disconnect(self, request: web.Request) -> m.BluetoothList:
        await self._manager().disconnect(param(request, "address", str).upper())
        return await self._list()

    def _manager(self) -> Bluetooth:
        bluetooth = self._ctx.hardware.bluetooth
        if bluetooth is None:
            raise ApiError("no-bluetooth", "this kit has no Bluetooth manager", status=404)
        return bluetooth
