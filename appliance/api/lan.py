"""The kits announced on the LAN, for the control page's kit list (docs/DISCOVERY.md)."""

from __future__ import annotations

from aiohttp import web

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import Endpoint


class LanApi:
    def __init__(self, context: ApiContext) -> None:
        self._ctx = context

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                "/api/v1/discovery/kits",
                self.kits,
                "Kits announced on the LAN (as they say; nothing here is verified)",
                "kit",
                reply=m.LanKits,
            )
        ]

    async def kits(self, request: web.Request) -> m.LanKits:
        discovery = self._ctx.discovery
        if discovery is None:
            return m.LanKits(enabled=False, kits=[])
        own = self._ctx.config.kit.uid
        found = sorted(discovery.kits.values(), key=lambda kit: kit.uid)
        return m.LanKits(
            enabled=True,
            kits=[
                m.LanKit(uid=k.uid, name=k.name, api=k.api, fingerprint=k.fingerprint)
                for k in found
                if k.uid != own
            ],
        )
