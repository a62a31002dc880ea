"""The web pages, served from the files packaged in ``appliance/web`` (no CDN: everything a
page needs comes from the kit, so it works with no internet)."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

# Pages run only their own files; media may come from the camera and the kit.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGES = {"/": "index.html", "/join/{code}": "join.html"}


def _load() -> dict[str, bytes]:
    root = resources.files("appliance") / "web"
    return {
        entry.name: entry.read_bytes()
        for entry in root.iterdir()
        if entry.is_file() and not entry.name.startswith(".")
    }


class Pages:
    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    async def load(self) -> None:
        self._files = await asyncio.to_thread(_load)

    def routes(self) -> list[web.RouteDef]:
        return [
            *(web.get(path, self._page(name)) for path, name in PAGES.items()),
            web.get("/static/{name}", self.static),
        ]

    def _page(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def page(request: web.Request) -> web.Response:
            return self._respond(name)

        return page

    async def static(self, request: web.Request) -> web.Response:
        return self._respond(request.match_info["name"])

    def _respond(self, name: str) -> web.Response:
        body = self._files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return web.Response(
            body=body,
            headers={
                "Content-Type": content_type
                + (
                    "; charset=utf-8"
                    if "text" in content_type or content_type.endswith("javascript")
                    else ""
                ),
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )
