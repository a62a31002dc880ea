"""The HDMI screen through DRM/KMS with pykms (Raspberry Pi OS's kms++ bindings, as
picamera2's DRM preview uses them), falling back to the framebuffer (``fbdev``).

KMS: the first connected connector, its CRTC and a plane; two dumb XRGB8888 framebuffers
of the configured size, drawn alternately and shown with an atomic commit, so the screen
never shows a half-drawn frame. When the screen's mode differs from the configured size the
plane scales the frame to fit, letterboxed. pykms is imported here only, when ``create``
runs; on Raspberry Pi OS it comes from ``python3-kms++``.

The mode's property blob lives as long as the display is open: kms++ destroys a blob when
Python drops it, and a commit naming a destroyed blob is refused. If the screen's mode
cannot be set ``MODESET_ATTEMPTS`` times in a row, the display says so as an error and
carries on through the framebuffer (``fbdev``) instead of leaving the screen black.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hal.config import HalConfig
from hal.display.base import Display, DisplayError, Rgb
from hal.display.fbdev import FramebufferDisplay
from hal.errors import DeviceGone, HardwareError
from hal.kit import KitIdentity

log = logging.getLogger(__name__)

MODESET_ATTEMPTS = 3  # refused mode sets in a row before giving KMS up for the framebuffer


def import_pykms() -> Any:
    try:
        try:  # the newer pure-Python kms package, where installed; else kms++'s bindings
            import kms as pykms  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            import pykms
    except ImportError as exc:
        raise DisplayError("display", f"pykms cannot be imported ({exc})") from exc
    return pykms


def fit(width: int, height: int, screen_w: int, screen_h: int) -> tuple[int, int, int, int]:
    """Where a ``width`` x ``height`` frame goes on the screen: as large as fits, centred,
    aspect ratio kept (letter- or pillar-boxed)."""
    if width * screen_h > screen_w * height:
        shown_h = screen_w * height // width
        return 0, (screen_h - shown_h) // 2, screen_w, shown_h
    shown_w = screen_h * width // height
    return (screen_w - shown_w) // 2, 0, shown_w, screen_h


@dataclass
class _Buffer:
    framebuffer: Any
    mapping: mmap.mmap
    stride: int


def xrgb_rows(frame: Rgb, stride: int) -> npt.NDArray[np.uint8]:
    """RGB as XRGB8888 in memory order (B, G, R, X per pixel), ``stride`` bytes a row."""
    height, width = frame.shape[:2]
    rows = np.zeros((height, stride), np.uint8)
    pixels = rows[:, : width * 4].reshape(height, width, 4)
    pixels[:, :, 0] = frame[:, :, 2]
    pixels[:, :, 1] = frame[:, :, 1]
    pixels[:, :, 2] = frame[:, :, 0]
    return rows


class KmsDisplay:
    """Implements ``Display`` on DRM/KMS. Records ``frames_shown`` and ``mode`` (the
    screen's (width, height)). Every pykms call runs on a worker thread, one at a time."""

    def __init__(
        self,
        pykms: Any,
        width: int,
        height: int,
        connector: str = "",
        *,
        fallback: Callable[[], Display] | None = None,
    ) -> None:
        self._pykms = pykms
        self._make_fallback = fallback
        self._fallback: Display | None = None  # in use once KMS cannot set the mode
        self._mode_blob: Any = None
        self._modeset_failures = 0
        self._size = (width, height)
        self._connector_name = connector
        self._lock = threading.Lock()
        self._card: Any = None
        self._connector: Any = None
        self._crtc: Any = None
        self._plane: Any = None
        self._mode: Any = None
        self._buffers: list[_Buffer] = []
        self._next = 0
        self._modeset_done = False
        self._connected = True
        self.frames_shown = 0
        self.mode: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def connected(self) -> bool:
        if self._fallback is not None:
            return self._fallback.connected
        return self._connected

    @property
    def is_open(self) -> bool:
        return self._card is not None or self._fallback is not None

    @property
    def fallback(self) -> Display | None:
        """The framebuffer display in use since KMS could not set the mode, if so."""
        return self._fallback

    async def open(self) -> None:
        if self._fallback is not None:
            await self._fallback.open()
            return
        if self.is_open:
            return
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        pykms = self._pykms
        with self._lock:
            try:
                card = pykms.Card()
            except Exception as exc:  # no /dev/dri/card*, or no permission
                raise DisplayError("display", f"cannot open the DRM card: {exc}") from exc
            if not card.has_atomic:
                raise DisplayError("display", "the DRM driver has no atomic modesetting")
            resources = pykms.ResourceManager(card)
            connector = resources.reserve_connector(self._connector_name)
            if connector is None or not connector.connected():
                self._connected = False
                raise DeviceGone("display", "no screen connected")
            crtc = resources.reserve_crtc(connector)
            plane = resources.reserve_generic_plane(crtc, pykms.PixelFormat.XRGB8888)
            if crtc is None or plane is None:
                raise DisplayError("display", "no free CRTC or plane for the screen")
            mode = connector.get_default_mode()
            width, height = self._size
            buffers = []
            for _ in range(2):
                framebuffer = pykms.DumbFramebuffer(card, width, height, "XR24")
                stride = framebuffer.stride(0)
                mapping = mmap.mmap(
                    framebuffer.fd(0),
                    stride * height,
                    mmap.MAP_SHARED,
                    mmap.PROT_READ | mmap.PROT_WRITE,
                )
                buffers.append(_Buffer(framebuffer, mapping, stride))
            self._card, self._connector, self._crtc, self._plane = card, connector, crtc, plane
            self._mode, self._buffers, self._next = mode, buffers, 0
            # Kept until close: the commits name it by id only.
            self._mode_blob = mode.to_blob(card)
            self._modeset_done = False
            self._modeset_failures = 0
            self._connected = True
            self.mode = (mode.hdisplay, mode.vdisplay)
            log.info(
                "display: %s at %dx%d, frames of %dx%d",
                connector.fullname,
                mode.hdisplay,
                mode.vdisplay,
                width,
                height,
            )

    async def show(self, frame: Rgb) -> None:
        width, height = self._size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {width}x{height} RGB uint8 frame, got {frame.dtype} {frame.shape}"
            )
        if not self.is_open:
            raise DisplayError("display", "not open")
        if self._fallback is None:
            try:
                await asyncio.to_thread(self._show, frame)
            except _ModesetRefused as refused:
                await self._give_up_kms(refused)
        if self._fallback is not None:
            await self._fallback.show(frame)
        self.frames_shown += 1

    async def _give_up_kms(self, refused: _ModesetRefused) -> None:
        """KMS refused the mode ``MODESET_ATTEMPTS`` times: the framebuffer, or an error."""
        await self.close()
        problem = f"KMS could not set the screen's mode {MODESET_ATTEMPTS} times ({refused})"
        if self._make_fallback is None:
            log.error("display: %s, and there is no framebuffer to fall back to", problem)
            raise DisplayError("display", f"{problem}; no framebuffer fallback")
        fallback = self._make_fallback()
        try:
            await fallback.open()
        except HardwareError as err:
            log.error("display: %s, and the framebuffer failed too: %s", problem, err.message)
            raise DisplayError(
                "display", f"{problem}; the framebuffer failed too: {err.message}"
            ) from err
        log.error("display: %s; showing the picture through the framebuffer instead", problem)
        self._fallback = fallback

    def _show(self, frame: Rgb) -> None:
        pykms = self._pykms
        with self._lock:
            if self._card is None:
                raise DisplayError("display", "closed")
            buffer = self._buffers[self._next]
            buffer.mapping[:] = xrgb_rows(frame, buffer.stride).tobytes()
            width, height = self._size
            screen = (self._mode.hdisplay, self._mode.vdisplay)
            request = pykms.AtomicReq(self._card)
            if not self._modeset_done:
                request.add_connector(self._connector, self._crtc)
                request.add_crtc(self._crtc, self._mode_blob)
            request.add_plane(
                self._plane,
                buffer.framebuffer,
                self._crtc,
                (0, 0, width, height),
                fit(width, height, *screen),
            )
            try:
                # kms++ returns a negative errno; some versions raise instead.
                result = request.commit_sync(allow_modeset=not self._modeset_done)
                failure = f"error {result}" if isinstance(result, int) and result < 0 else None
            except Exception as exc:
                failure = str(exc)
            if failure is not None:  # the screen went away, or the commit was refused
                self._connector.refresh()
                self._connected = bool(self._connector.connected())
                if not self._connected:
                    raise DeviceGone("display", "the screen was unplugged")
                if not self._modeset_done:
                    self._modeset_failures += 1
                    if self._modeset_failures >= MODESET_ATTEMPTS:
                        raise _ModesetRefused(failure)
                    log.warning(
                        "display: KMS refused the mode %dx%d (%s), attempt %d of %d",
                        *screen,
                        failure,
                        self._modeset_failures,
                        MODESET_ATTEMPTS,
                    )
                raise DisplayError("display", f"KMS commit failed: {failure}")
            self._modeset_done = True
            self._modeset_failures = 0
            self._next = 1 - self._next

    async def close(self) -> None:
        if self._fallback is not None:
            await self._fallback.close()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            for buffer in self._buffers:
                with contextlib.suppress(Exception):
                    buffer.mapping.close()
            # Dropping the card closes the DRM device: the kernel gives the console back.
            self._buffers = []
            self._mode_blob = None  # destroys the blob, before the card closes
            self._card = self._connector = self._crtc = self._plane = self._mode = None


class _ModesetRefused(Exception):
    """KMS refused the mode ``MODESET_ATTEMPTS`` times in a row."""


def create(config: HalConfig, kit: KitIdentity) -> Display:
    """KMS when pykms and a DRM card with a connected screen are there, else the
    framebuffer; neither is a start-up error naming the display."""
    settings = config.display

    def framebuffer() -> Display:
        return FramebufferDisplay(
            settings.framebuffer, width=settings.width, height=settings.height
        )

    try:
        pykms = import_pykms()
        card = pykms.Card()
        del card  # only checking that the card opens; open() claims it
        return KmsDisplay(pykms, settings.width, settings.height, fallback=framebuffer)
    except Exception as exc:
        kms_problem = str(exc)
    fallback = FramebufferDisplay(
        settings.framebuffer, width=settings.width, height=settings.height
    )
    try:
        geometry = fallback.probe()
    except DisplayError as err:
        raise HardwareError(
            "display", f"no KMS ({kms_problem}) and no framebuffer ({err.message})"
        ) from err
    log.warning(
        "display: KMS unavailable (%s); using %s at %dx%d",
        kms_problem,
        settings.framebuffer,
        geometry.width,
        geometry.height,
    )
    return fallback
