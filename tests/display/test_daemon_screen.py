"""The screen inside the daemon: home with the API's address and fresh token, a call from
another daemon, and GET /api/v1/display.png."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import numpy as np
import pytest
from PIL import Image

from appliance.daemon import Daemon
from appliance.display import theme
from appliance.display.scene import HomeInfo, Ringing, Scene, Screen
from hal.buttons.fake import FakeButtons
from hal.camera.pattern import kit_colour
from hal.display.fake import FakeDisplay
from tests.daemons import host_and_guest
from tests.display.conftest import distance, median_colour, painted

SIZE = (640, 360)


@pytest.fixture
async def daemons(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    screen = {"display": {"width": SIZE[0], "height": SIZE[1], "fps": 15}}
    async with host_and_guest(tmp_path, hal=screen) as daemons:
        yield daemons


async def shown(daemon: Daemon, check: Any, timeout: float = 15) -> np.ndarray[Any, Any]:
    assert daemon.hardware is not None
    display = cast(FakeDisplay, daemon.hardware.display)
    async with asyncio.timeout(timeout):
        while True:
            frame = display.last_frame
            if frame is not None and check(frame):
                return frame
            await asyncio.sleep(0.03)


async def test_the_daemon_drives_the_screen(daemons: tuple[Daemon, Daemon]) -> None:
    host, guest = daemons
    assert host.api is not None and host.compositor is not None and guest.kit is not None
    assert host.calls is not None and host.calls.view is host.compositor
    token = host.api.tokens.fresh_token
    assert token is not None  # made on this first start: shown on the screen
    home = HomeInfo("Room A", host.api.url, True, token)
    await shown(host, lambda f: (f == painted(Scene(home=home), SIZE)).all())

    await guest.kit.place_call("room-a", "video")
    ringing = Scene(screen=Screen.INCOMING, ringing=Ringing(True, "Room B", "room-b", "video"))
    await shown(host, lambda f: (f == painted(ringing, SIZE)).all())
    assert host.hardware is not None
    cast(FakeButtons, host.hardware.buttons).press("mute")  # answers

    def guest_on_screen(frame: np.ndarray[Any, Any]) -> bool:
        tile = host.compositor.shown_layout.tile_of("room-b") if host.compositor else None
        return (
            tile is not None
            and tile.live
            and distance(median_colour(frame, tile.rect), kit_colour("room-b")) < 30
        )

    await shown(host, guest_on_screen)
    assert tuple(host.compositor.snapshot_rgb()[0, 0]) == theme.CALL_BG

    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.get(f"{host.api.url}/api/v1/display.png") as response,
    ):
        assert response.status == 200
        assert response.content_type == "image/png"
        picture = np.asarray(Image.open(io.BytesIO(await response.read())).convert("RGB"))
    assert picture.shape == (SIZE[1], SIZE[0], 3)
    assert guest_on_screen(picture)
