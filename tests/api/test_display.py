"""The screen over REST: PNG, MJPEG and the layout controls, against the real compositor."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from appliance.daemon import Daemon
from tests.api.daemon import Api

pytest.importorskip("appliance.display.compositor")


@pytest.fixture
def screen(kit: Daemon) -> Any:
    compositor = getattr(kit, "compositor", None)
    if compositor is None:
        pytest.skip("this daemon has no compositor")
    return compositor


async def test_without_a_compositor_the_screen_is_409(kit: Daemon, api: Api) -> None:
    assert kit.api is not None
    kit.api.screen = None
    status, reply = await api.call("GET", "/display.png")
    assert (status, reply["error"]["code"]) == (409, "no-display")


async def settled(screen: Any) -> None:
    """Until the screen has not repainted for a while (the home screen repaints just after
    start, when the API address and token arrive)."""
    async with asyncio.timeout(10):
        while True:
            before = screen.frame_number
            await asyncio.sleep(0.3)
            if screen.frame_number == before:
                return


async def test_png_and_mjpeg_show_what_the_screen_shows(api: Api, screen: Any) -> None:
    await settled(screen)
    async with api.http.get(api.base + "/api/v1/display.png", headers=api.headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        png = Image.open(io.BytesIO(await response.read()))
    assert png.size == (640, 360)
    shown = np.asarray(png.convert("RGB"))
    now = screen.snapshot_rgb()
    assert np.abs(shown.astype(int) - now.astype(int)).mean() < 2  # the same screen
    assert shown.std() > 1  # the home screen, not a blank frame

    url = api.base + "/api/v1/display.mjpeg?frames=2&fps=10"
    async with api.http.get(url, headers=api.headers()) as response:
        assert response.status == 200
        boundary = response.headers["Content-Type"].split("boundary=")[1]
        body = await response.read()
    parts = [p for p in body.split(f"--{boundary}".encode()) if p.strip()]
    assert len(parts) == 2
    for part in parts:
        headers, _, jpeg = part.partition(b"\r\n\r\n")
        assert b"Content-Type: image/jpeg" in headers
        frame = np.asarray(Image.open(io.BytesIO(jpeg.removesuffix(b"\r\n"))).convert("RGB"))
        assert frame.shape == (360, 640, 3)
        assert np.abs(frame.astype(int) - shown.astype(int)).mean() < 8  # JPEG is lossy


async def test_layout_controls(kit: Daemon, api: Api, screen: Any) -> None:
    status, reply = await api.call("POST", "/display/mode", {"mode": "spotlight"})
    assert (status, reply["error"]["code"]) == (409, "no-active-session")
    await api.ok("PUT", "/session", {"session_id": "layout"})
    await api.ok("POST", "/display/mode", {"mode": "spotlight"})
    assert (await api.ok("GET", "/session"))["local"]["display_mode"] == "spotlight"
    await api.ok("POST", "/display/select", {"uid": "room-a"})
    status, reply = await api.call("POST", "/display/select", {"uid": "nobody"})
    assert (status, reply["error"]["field"]) == (422, "uid")
    status, reply = await api.call("POST", "/display/move", {"uid": "room-a", "x": 5000, "y": 0})
    assert status in (409, 422), reply
