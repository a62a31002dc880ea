"""Participants' avatar images: fetched once per URL (http, https or a data: URI), decoded
off the loop, kept small. A URL that fails is logged once and not tried again, so the
screen shows initials instead."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
from collections.abc import Callable
from typing import Literal
from urllib.parse import unquote_to_bytes, urlsplit

import aiohttp
from PIL import Image

from appliance.tasks import TaskSet

log = logging.getLogger(__name__)

MAX_BYTES = 4 << 20  # an avatar bigger than this is refused
MAX_PIXELS = 4096 * 4096  # decompression bombs are refused
KEEP_SIZE = 512  # decoded images are kept at most this large
MAX_IMAGES = 64
FETCH_TIMEOUT = 10.0

State = Literal["loading", "ready", "failed"]


class AvatarError(Exception):
    pass


class AvatarImages:
    def __init__(self, on_loaded: Callable[[], None]) -> None:
        self._on_loaded = on_loaded
        self._images: dict[str, Image.Image] = {}
        self._state: dict[str, State] = {}
        self._tasks = TaskSet(log)
        self._http: aiohttp.ClientSession | None = None

    def get(self, url: str) -> Image.Image | None:
        """The decoded image (any thread), or None until it is loaded."""
        return self._images.get(url)

    def ready(self, url: str | None) -> bool:
        return url is not None and url in self._images

    def want(self, url: str | None) -> None:
        """Start loading ``url`` unless it is loaded, loading or failed. Needs the loop."""
        if not url or url in self._state:
            return
        if len(self._state) >= MAX_IMAGES:
            self._forget_oldest()
        self._state[url] = "loading"
        self._tasks.spawn(self._load(url), "avatar")

    async def close(self) -> None:
        await self._tasks.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _forget_oldest(self) -> None:
        oldest = next((url for url, state in self._state.items() if state != "loading"), None)
        if oldest is not None:
            del self._state[oldest]
            self._images.pop(oldest, None)

    async def _load(self, url: str) -> None:
        try:
            data = await self._fetch(url)
            image = await asyncio.to_thread(decode, data)
        except (AvatarError, aiohttp.ClientError, TimeoutError, OSError) as err:
            log.warning("avatar %s: %s", _short(url), err)
            self._state[url] = "failed"
            return
        self._images[url] = image
        self._state[url] = "ready"
        self._on_loaded()

    async def _fetch(self, url: str) -> bytes:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data":
            return data_uri_bytes(url)
        if scheme not in ("http", "https"):
            raise AvatarError(f"unsupported URL scheme {scheme or 'none'!r}")
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
        async with self._http.get(url) as response:
            if response.status != 200:
                raise AvatarError(f"HTTP {response.status}")
            data = await response.content.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise AvatarError(f"larger than {MAX_BYTES} bytes")
        return data


def data_uri_bytes(url: str) -> bytes:
    """The payload of a ``data:[<type>][;base64],<data>`` URI."""
    header, comma, payload = url.partition(",")
    if not comma:
        raise AvatarError("a data: URI without a comma")
    if len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise AvatarError(f"larger than {MAX_BYTES} bytes")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as err:
            raise AvatarError(f"bad base64: {err}") from None
    return unquote_to_bytes(payload)


def decode(data: bytes) -> Image.Image:
    """An RGB image at most KEEP_SIZE on its longer side."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise AvatarError(f"too large: {image.width}x{image.height}")
            image.draft("RGB", (KEEP_SIZE, KEEP_SIZE))  # JPEG: decode at a reduced size
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as err:
        raise AvatarError(f"not an image: {err}") from None
    rgb.thumbnail((KEEP_SIZE, KEEP_SIZE), Image.Resampling.LANCZOS)
    return rgb


def _short(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."
