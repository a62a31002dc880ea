"""Turning camera buffers into frames, and the sizes a software-encoded camera sends at."""

from __future__ import annotations

import math

import av
import numpy as np
import numpy.typing as npt

from hal.camera.base import VideoFormat

# aiortc encodes frames in software, once per peer. Beyond this pixel rate (640x480 at 30 fps)
# a Pi spends most of a core per peer; larger formats are scaled down, keeping the frame rate.
SOFTWARE_PIXEL_RATE = 640 * 480 * 30


def software_format(fmt: VideoFormat, pixel_rate: int = SOFTWARE_PIXEL_RATE) -> VideoFormat:
    """``fmt`` scaled down (same aspect ratio, even sizes) to at most ``pixel_rate``."""
    rate = fmt.width * fmt.height * fmt.fps
    scale = min(1.0, math.sqrt(pixel_rate / rate)) if rate else 1.0
    return VideoFormat(
        max(2, int(fmt.width * scale) // 2 * 2), max(2, int(fmt.height * scale) // 2 * 2), fmt.fps
    )


def yuv420_frame(
    buffer: npt.NDArray[np.uint8], width: int, height: int, stride: int
) -> av.VideoFrame:
    """A yuv420p frame from a planar YUV 4:2:0 buffer whose luma rows are ``stride`` bytes
    apart and chroma rows ``stride // 2`` (libcamera's YUV420, as picamera2 returns it: an
    array of ``height * 3 // 2`` rows of ``stride`` bytes). The padding is dropped."""
    if width % 2 or height % 2:
        raise ValueError(f"YUV 4:2:0 needs even sizes, not {width}x{height}")
    if stride < width:
        raise ValueError(f"stride {stride} is less than the width {width}")
    flat = np.ascontiguousarray(buffer, dtype=np.uint8).reshape(-1)
    luma = stride * height
    chroma_stride = stride // 2
    chroma = chroma_stride * (height // 2)
    if flat.size < luma + 2 * chroma:
        raise ValueError(
            f"a {width}x{height} buffer with stride {stride} needs {luma + 2 * chroma} bytes, "
            f"got {flat.size}"
        )
    half_w, half_h = width // 2, height // 2
    out = np.empty(width * height * 3 // 2, np.uint8)
    out[: width * height] = flat[:luma].reshape(height, stride)[:, :width].reshape(-1)
    for index in range(2):
        start = luma + index * chroma
        plane = flat[start : start + chroma].reshape(half_h, chroma_stride)[:, :half_w]
        begin = width * height + index * half_w * half_h
        out[begin : begin + half_w * half_h] = plane.reshape(-1)
    return av.VideoFrame.from_ndarray(out.reshape(height * 3 // 2, width), format="yuv420p")
