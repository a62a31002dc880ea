"""The HDMI screen through DRM/KMS with pykms (Raspberry Pi OS's kms++ bindings, as
picamera2's DRM preview uses them), falling back to the framebuffer (``fbdev``).

KMS: the first connected connector, its CRTC and a plane; two dumb XRGB8888 framebuffers
of the configured size, drawn alternately and shown with an atomic commit, so the screen
never shows a half-drawn frame. When the screen's mode differs from the configured size the
plane scales the frame to fit, letterboxed. pykms is imported here only, when ``create``
runs; on Raspberry Pi OS it comes from ``python3-kms++``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import threading
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

    def __init__(self, pykms: Any, width: int, height: int, connector: str = "") -> None:
        self._pykms = pykms
        self._size = (width, height)
        self._connector_name = connector
        self._lock = threading.Lock()
        self._card: Any = None
        self._connector: Any = None
        self._crtc: Any = None
        self._plane: Any = None
        self._mode: Any = None
        # The mode's property blob lives as long as the display: kms++'s AtomicReq keeps
        # only its id, and a Blob that Python frees destroys the id (the commit: EINVAL).
        self._mode_blob: Any = None
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
        return self._connected

    @property
    def is_open(self) -> bool:
        return self._card is not None

    async def open(self) -> None:
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
            self._mode_blob = mode.to_blob(card)
            self._modeset_done = False
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
        await asyncio.to_thread(self._show, frame)
        self.frames_shown += 1

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
                raise DisplayError("display", f"KMS commit failed: {failure}")
            self._modeset_done = True
            self._next = 1 - self._next

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            for buffer in self._buffers:
                with contextlib.suppress(Exception):
                    buffer.mapping.close()
            # Dropping the card closes the DRM device: the kernel gives the console back.
            self._buffers = []
            self._mode_blob = None
            self._card = self._connector = self._crtc = self._plane = self._mode = None


def create(config: HalConfig, kit: KitIdentity) -> Display:
    """KMS when pykms and a DRM card with a connected screen are there, else the
    framebuffer; neither is a start-up error naming the display."""
    settings = config.display
    try:
        pykms = import_pykms()
        card = pykms.Card()
        del card  # only checking that the card opens; open() claims it
        return KmsDisplay(pykms, settings.width, settings.height)
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
