"""The HDMI screen: a PNG of what it shows, an MJPEG stream of it, and its layout controls."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from aiohttp import web
from PIL import Image
from pydantic import Field

from appliance.api import models as m
from appliance.api.context import ApiContext, Screen
from appliance.api.routing import ApiError, Endpoint, Param, Raw, body_of, optional_param
from appliance.calls import DisplayMode

BOUNDARY = "callbox-frame"
JPEG_QUALITY = 80
KEEPALIVE_SECONDS = 2.0
Fps = Annotated[int, Field(ge=1, le=30)]
Frames = Annotated[int, Field(ge=1, le=100_000)]
NO_SCREEN = "The kit has no screen compositor (display disabled)"


class DisplayApi:
    def __init__(self, context: ApiContext, closing: asyncio.Event) -> None:
        self._ctx = context
        self._closing = closing

    def endpoints(self) -> list[Endpoint]:
        no_screen = {409: NO_SCREEN}
        return [
            Endpoint(
                "GET",
                "/api/v1/display.png",
                self.png,
                "What the HDMI screen shows now",
                "display",
                raw=Raw("image/png"),
                errors=no_screen,
            ),
            Endpoint(
                "GET",
                "/api/v1/display.mjpeg",
                self.mjpeg,
                "The screen as an MJPEG stream",
                "display",
                raw=Raw(f"multipart/x-mixed-replace; boundary={BOUNDARY}"),
                params=(
                    Param("fps", Fps, "query", "frames per second at most (default 10)", False),
                    Param("frames", Frames, "query", "stop after this many frames", False),
                ),
                errors=no_screen,
            ),
            Endpoint(
                "POST",
                "/api/v1/display/mode",
                self.mode,
                "Layout: default, single or spotlight",
                "display",
                body=m.SetDisplayMode,
                reply=m.Done,
                errors={409: NO_SCREEN + "; or no active session"},
            ),
            Endpoint(
                "POST",
                "/api/v1/display/select",
                self.select,
                "Feature one participant (null: none)",
                "display",
                body=m.SelectTile,
                reply=m.Done,
                errors={409: NO_SCREEN + "; no active session; or the call forbids it"},
            ),
            Endpoint(
                "POST",
                "/api/v1/display/move",
                self.move,
                "Move a participant's tile (spotlight)",
                "display",
                body=m.MoveTile,
                reply=m.Done,
                errors={409: NO_SCREEN + "; no active session; or the call forbids it"},
            ),
        ]

    def _screen(self) -> Screen:
        screen = self._ctx.screen
        if screen is None:
            raise ApiError("no-display", NO_SCREEN, status=409)
        return screen

    async def png(self, request: web.Request) -> web.Response:
        data = await self._screen().snapshot_png()
        return web.Response(body=data, content_type="image/png")

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        screen = self._screen()
        fps = optional_param(request, "fps", int) or 10
        limit = optional_param(request, "frames", int)
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        sequence = -1
        sent = 0
        next_at = loop.time()
        with contextlib.suppress(ConnectionError):
            while limit is None or sent < limit:
                frame_task = asyncio.ensure_future(screen.next_frame(sequence))
                stop_task = asyncio.ensure_future(self._closing.wait())
                done, _ = await asyncio.wait(
                    {frame_task, stop_task},
                    timeout=KEEPALIVE_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stop_task.cancel()
                if stop_task in done:
                    frame_task.cancel()
                    break
                if frame_task in done:
                    sequence, rgb = frame_task.result()
                else:  # a still screen: repeat it now and then, so clients see the stream live
                    frame_task.cancel()
                    rgb = screen.snapshot_rgb()
                jpeg = await asyncio.to_thread(encode_jpeg, rgb)
                await response.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                sent += 1
                next_at = max(next_at + 1 / fps, loop.time())
                await asyncio.sleep(next_at - loop.time())
            await response.write_eof()
        return response

    async def mode(self, request: web.Request) -> m.Done:
        mode = DisplayMode(body_of(request, m.SetDisplayMode).mode)
        _refusing_bad_values(self._screen().set_mode, mode)
        return m.Done()

    async def select(self, request: web.Request) -> m.Done:
        _refusing_bad_values(self._screen().select, body_of(request, m.SelectTile).uid)
        return m.Done()

    async def move(self, request: web.Request) -> m.Done:
        body = body_of(request, m.MoveTile)
        _refusing_bad_values(self._screen().move_tile, body.uid, body.x, body.y)
        return m.Done()


def _refusing_bad_values(action: Callable[..., Any], *args: Any) -> None:
    """The compositor raises ValueError naming the argument (an unknown participant, a
    point off the screen) and CallsError when the call's state forbids the action."""
    try:
        action(*args)
    except ValueError as err:
        name = str(err).partition(":")[0]
        raise ApiError("invalid-field", str(err), status=422, field=name) from None


def encode_jpeg(rgb: npt.NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
