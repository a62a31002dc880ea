"""The HDMI screen through the Linux framebuffer (``/dev/fb0``): the fallback when DRM/KMS
cannot be used (no pykms, no atomic modesetting, another DRM master holds the screen).

The frame is converted to the framebuffer's pixel layout (32-bit XRGB/XBGR, 24-bit, or
16-bit RGB565 as the Pi's firmware framebuffer often is) and written into a shared mapping,
on a worker thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import os
import stat
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hal.display.base import DisplayError, Rgb
from hal.errors import DeviceGone

FBIOGET_VSCREENINFO = 0x4600
FBIOGET_FSCREENINFO = 0x4602
# struct fb_var_screeninfo: xres, yres, xres_virtual, yres_virtual, xoffset, yoffset,
# bits_per_pixel, grayscale, then red, green, blue, transp as (offset, length, msb_right).
_VAR = struct.Struct("=8I12I")
_VAR_SIZE = 160  # the kernel's struct; the fields above are its start
# struct fb_fix_screeninfo: id[16], smem_start (unsigned long), smem_len, type, type_aux,
# visual, then the 16-bit xpanstep, ypanstep, ywrapstep, and line_length (native alignment).
_FIX_PREFIX = struct.Struct("@16sL4I3HI")
_FIX_SIZE = 80 if struct.calcsize("L") == 8 else 68


@dataclass(frozen=True)
class FbGeometry:
    width: int
    height: int
    bits_per_pixel: int
    stride: int  # bytes per line
    red_offset: int = 16  # bit offsets of each channel within a pixel
    green_offset: int = 8
    blue_offset: int = 0

    @property
    def size(self) -> int:
        return self.stride * self.height


def parse_screeninfo(var: bytes, fix: bytes) -> FbGeometry:
    """Geometry from the FBIOGET_VSCREENINFO and FBIOGET_FSCREENINFO answers."""
    fields = _VAR.unpack_from(var)
    width, height, bits = fields[0], fields[1], fields[6]
    red, green, blue = fields[8], fields[11], fields[14]
    line_length = _FIX_PREFIX.unpack_from(fix)[-1]
    return FbGeometry(width, height, bits, line_length, red, green, blue)


def read_geometry(fd: int) -> FbGeometry:
    var = fcntl.ioctl(fd, FBIOGET_VSCREENINFO, bytes(_VAR_SIZE))
    fix = fcntl.ioctl(fd, FBIOGET_FSCREENINFO, bytes(_FIX_SIZE))
    return parse_screeninfo(var, fix)


def to_pixels(frame: Rgb, geometry: FbGeometry) -> npt.NDArray[np.uint8]:
    """``frame`` (height, width, 3 RGB) as the framebuffer's rows, ``stride`` bytes each."""
    height, width = frame.shape[:2]
    rows = np.zeros((height, geometry.stride), np.uint8)
    bits = geometry.bits_per_pixel
    if bits == 32:
        pixels = rows[:, : width * 4].reshape(height, width, 4)
        for channel, offset in enumerate(
            (geometry.red_offset, geometry.green_offset, geometry.blue_offset)
        ):
            pixels[:, :, offset // 8] = frame[:, :, channel]
    elif bits == 24:
        pixels = rows[:, : width * 3].reshape(height, width, 3)
        for channel, offset in enumerate(
            (geometry.red_offset, geometry.green_offset, geometry.blue_offset)
        ):
            pixels[:, :, offset // 8] = frame[:, :, channel]
    elif bits == 16:
        r = frame[:, :, 0].astype(np.uint16) >> 3
        g = frame[:, :, 1].astype(np.uint16) >> 2
        b = frame[:, :, 2].astype(np.uint16) >> 3
        packed = (r << 11) | (g << 5) | b
        rows[:, : width * 2] = packed.astype("<u2").view(np.uint8).reshape(height, width * 2)
    else:
        raise DisplayError("display", f"{bits} bits per pixel framebuffers are not supported")
    return rows


class FramebufferDisplay:
    """A framebuffer device (geometry from its ioctls). Anything but a character device is
    refused, so a config cannot make the kit overwrite a file; tests may allow a regular
    file (``allow_regular_file``), mapped as 32-bit XRGB at the configured size."""

    def __init__(
        self, path: str, *, width: int, height: int, allow_regular_file: bool = False
    ) -> None:
        self.path = path
        self._allow_regular_file = allow_regular_file
        self._configured = FbGeometry(width, height, 32, width * 4)
        self._geometry: FbGeometry | None = None
        self._mapping: mmap.mmap | None = None
        self._lock = asyncio.Lock()
        self.frames_shown = 0

    @property
    def geometry(self) -> FbGeometry:
        return self._geometry or self.probe()

    def probe(self) -> FbGeometry:
        """The framebuffer's geometry; raises DisplayError if there is none to use."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise DisplayError("display", f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            return self._geometry_of(fd)
        finally:
            os.close(fd)

    def _geometry_of(self, fd: int) -> FbGeometry:
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode):
            try:
                return read_geometry(fd)
            except OSError as exc:
                raise DisplayError("display", f"{self.path} is no framebuffer: {exc}") from exc
        if not (self._allow_regular_file and stat.S_ISREG(info.st_mode)):
            raise DisplayError("display", f"{self.path} is no framebuffer: not a character device")
        geometry = self._configured
        if info.st_size < geometry.size:
            raise DisplayError(
                "display",
                f"{self.path} holds {info.st_size} bytes, a {geometry.width}x{geometry.height} "
                f"32-bit frame needs {geometry.size}",
            )
        return geometry

    @property
    def size(self) -> tuple[int, int]:
        geometry = self.geometry
        return geometry.width, geometry.height

    @property
    def connected(self) -> bool:
        return True  # fbdev cannot tell whether a screen is plugged in

    @property
    def is_open(self) -> bool:
        return self._mapping is not None

    async def open(self) -> None:
        if self._mapping is not None:
            return
        self._geometry, self._mapping = await asyncio.to_thread(self._map)

    def _map(self) -> tuple[FbGeometry, mmap.mmap]:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise DeviceGone("display", f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            geometry = self._geometry_of(fd)
            return geometry, mmap.mmap(fd, geometry.size, mmap.MAP_SHARED, mmap.PROT_WRITE)
        finally:
            os.close(fd)  # the mapping keeps the framebuffer

    async def show(self, frame: Rgb) -> None:
        geometry, mapping = self._geometry, self._mapping
        if geometry is None or mapping is None:
            raise DisplayError("display", "not open")
        width, height = geometry.width, geometry.height
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {width}x{height} RGB uint8 frame, got {frame.dtype} {frame.shape}"
            )
        async with self._lock:
            await asyncio.to_thread(self._write, mapping, to_pixels(frame, geometry))
        self.frames_shown += 1

    @staticmethod
    def _write(mapping: mmap.mmap, rows: npt.NDArray[np.uint8]) -> None:
        try:
            mapping[: rows.nbytes] = rows.tobytes()
        except (OSError, ValueError) as exc:
            raise DeviceGone("display", f"framebuffer write failed: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            mapping, self._mapping = self._mapping, None
            if mapping is not None:
                mapping.close()
