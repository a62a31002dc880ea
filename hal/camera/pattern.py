"""The fake camera's test pattern, and reading it back from a received frame.

Layout, top to bottom: a band of large black and white blocks that carries the frame counter
and camera index, two lines of text (kit and camera name; the frame counter) on the kit's
background colour, and a region where a bar moves sideways. The blocks are sized as fractions
of the frame, so they survive scaling, and are big enough to survive lossy VP8/H.264 coding.
The band is at the top because a screen draws over the bottom of a tile (the name label, the
floating self view): the code stays readable on what a kit shows.

Band: ``BARCODE_ROWS`` x ``BARCODE_COLS`` cells, row-major. Cells 0 and 1 are white and black,
the last two black and white (they calibrate the threshold); the 36 cells between carry
24 bits of counter, 4 bits of camera index and a CRC-8 over both, most significant bit first.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from hal.kit import uid_fraction

Plane = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]  # (r, g, b), 0-255

BARCODE_ROWS = 2
BARCODE_COLS = 20
BAND_FRACTION = 1 / 6  # of the frame's height, at the top
COUNTER_BITS = 24
CAMERA_BITS = 4
COUNTER_MODULO = 1 << COUNTER_BITS
MAX_CAMERA_INDEX = (1 << CAMERA_BITS) - 1
BAR_PERIOD_FRAMES = 60  # frames for the bar to cross the frame once

_WHITE_Y, _BLACK_Y, _NEUTRAL_C = 235, 16, 128  # video-range luma, neutral chroma
_CALIBRATION = ((0, True), (1, False), (-2, False), (-1, True))  # (cell, is white)
_DATA_CELLS = BARCODE_ROWS * BARCODE_COLS - len(_CALIBRATION)
_MIN_CONTRAST = 60  # luma between calibration white and black, below which there is no code

MIN_SIZE = (160, 120)
MAX_SIZE = (1920, 1080)


@dataclass(frozen=True)
class PatternInfo:
    counter: int  # the frame's slot since the camera opened, modulo COUNTER_MODULO
    camera_index: int


# ---- colours ---------------------------------------------------------------------------


def _palette() -> tuple[Colour, ...]:
    colours = []
    for value in (0.85, 0.55):  # bright and deep
        for step in range(12):  # hues 30 degrees apart
            r, g, b = colorsys.hsv_to_rgb(step / 12, 0.85, value)
            colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours)


# Saturated colours at least 59 apart in RGB, so two kits are either told apart at a glance
# (and by ``dominant_colour`` after lossy coding) or, rarely, the same.
KIT_PALETTE = _palette()


def kit_colour(uid: str) -> Colour:
    """The kit's background colour, chosen from KIT_PALETTE by its uid: the same in every
    run and process."""
    return KIT_PALETTE[int(uid_fraction(uid, "camera-colour") * len(KIT_PALETTE))]


def parse_colour(text: str) -> Colour:
    """``"#rrggbb"`` to ``(r, g, b)``."""
    if len(text) != 7 or text[0] != "#":
        raise ValueError(f"expected #rrggbb, got {text!r}")
    value = int(text[1:], 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def rgb_to_yuv(colour: Colour) -> tuple[int, int, int]:
    """BT.601 video range, the conversion libswscale applies to yuv420p by default."""
    r, g, b = (c / 255 for c in colour)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(u), round(v)


def yuv_to_rgb(y: float, u: float, v: float) -> Colour:
    yy = 1.164383 * (y - 16)
    r = yy + 1.596027 * (v - 128)
    g = yy - 0.391762 * (u - 128) - 0.812968 * (v - 128)
    b = yy + 2.017232 * (u - 128)
    return _clamp_byte(r), _clamp_byte(g), _clamp_byte(b)


def _clamp_byte(value: float) -> int:
    return int(min(255, max(0, round(value))))


def colour_distance(a: Colour, b: Colour) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


# ---- geometry shared by the writer and the reader ---------------------------------------


def _even(value: float) -> int:
    return round(value / 2) * 2


def band_height(height: int) -> int:
    return _even(height * BAND_FRACTION)


def _cell_edges(start: int, length: int, cells: int) -> list[int]:
    return [start + _even(length * i / cells) for i in range(cells + 1)]


# ---- the barcode's payload ---------------------------------------------------------------


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _payload(counter: int, camera_index: int) -> int:
    counter %= COUNTER_MODULO
    crc = _crc8(counter.to_bytes(3, "big") + bytes([camera_index]))
    return (counter << (CAMERA_BITS + 8)) | (camera_index << 8) | crc


def _payload_bits(counter: int, camera_index: int) -> list[bool]:
    payload = _payload(counter, camera_index)
    data = [bool(payload >> (_DATA_CELLS - 1 - i) & 1) for i in range(_DATA_CELLS)]
    cells = [False] * (BARCODE_ROWS * BARCODE_COLS)
    for index, white in _CALIBRATION:
        cells[index] = white
    cells[2:-2] = data
    return cells


# ---- text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextPatch:
    """Text pre-blended onto the background: copied into place, no per-frame blending."""

    y: Plane
    u: Plane
    v: Plane


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _stroke_width(font_size: int) -> int:
    return max(1, font_size // 12)


def _text_width(text: str, font_size: int) -> int:
    left, _, right, _ = _font(font_size).getbbox(text, stroke_width=_stroke_width(font_size))
    return int(right - left)


def _render_text(
    text: str, font_size: int, background: tuple[int, int, int], width: int | None = None
) -> _TextPatch:
    """White text with a black outline over ``background`` (Y, U, V), as even-sized planes."""
    font = _font(font_size)
    stroke = _stroke_width(font_size)
    left, _, right, _ = font.getbbox(text, stroke_width=stroke)
    text_width = right - left
    w = _even(width + 1) if width is not None else _even(text_width + 3)
    h = _even(font_size * 1.3 + 2 * stroke + 1)
    origin = (-left + (w - text_width) / 2, stroke + (h - (font_size * 1.3 + 2 * stroke)) / 2)
    outline = Image.new("L", (w, h))
    ImageDraw.Draw(outline).text(origin, text, fill=255, font=font, stroke_width=stroke)
    fill = Image.new("L", (w, h))
    ImageDraw.Draw(fill).text(origin, text, fill=255, font=font)
    o = np.asarray(outline, dtype=np.float32) / 255
    f = np.asarray(fill, dtype=np.float32) / 255
    bg_y, bg_u, bg_v = background
    y = (bg_y * (1 - o) + _BLACK_Y * o) * (1 - f) + _WHITE_Y * f
    o_half = o.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    u = bg_u * (1 - o_half) + _NEUTRAL_C * o_half
    v = bg_v * (1 - o_half) + _NEUTRAL_C * o_half
    return _TextPatch(*(np.rint(p).astype(np.uint8) for p in (y, u, v)))


def _fit_font_size(text: str, preferred: int, max_width: int) -> int:
    width = _font(preferred).getlength(text)
    if width <= max_width:
        return preferred
    return max(6, int(preferred * max_width / width))


# ---- the pattern --------------------------------------------------------------------------


class TestPattern:
    """Draws numbered frames for one camera at one size. Everything that does not change
    between frames (background, name text, digit images, cell positions) is prepared here
    once; ``frame()`` only copies and fills rectangles."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self, width: int, height: int, *, colour: Colour, label: str, camera_index: int
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even sizes, got {width}x{height}")
        if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
            raise ValueError(f"{width}x{height} is outside {MIN_SIZE} to {MAX_SIZE}")
        if not 0 <= camera_index <= MAX_CAMERA_INDEX:
            raise ValueError(f"camera index {camera_index} does not fit in {CAMERA_BITS} bits")
        self.width, self.height = width, height
        self.colour = colour
        self.camera_index = camera_index
        self._bg = rgb_to_yuv(colour)
        bg_y = self._bg[0]

        pad = _even(max(2, height // 60))
        font_size = max(8, height // 14)
        label_size = _fit_font_size(label, font_size, width - 2 * pad)
        label_patch = _render_text(label, label_size, self._bg)
        digit_width = max(_text_width(str(d), font_size) for d in range(10))
        self._digits = [_render_text(str(d), font_size, self._bg, digit_width) for d in range(10)]

        self._band_height = band_height(height)
        self._label_at = (self._band_height + pad, pad)
        self._counter_at = (self._label_at[0] + label_patch.y.shape[0], pad)
        self._digit_step = self._digits[0].y.shape[1]
        text_bottom = self._counter_at[0] + self._digits[0].y.shape[0] + pad
        self._bar_top = min(_even(text_bottom), _even((self._band_height + height) / 2))
        self._bar_width = _even(width / 16)
        self._bar_y = _BLACK_Y if bg_y > 128 else _WHITE_Y
        self._bar_direction = -1 if camera_index % 2 else 1

        cols = _cell_edges(0, width, BARCODE_COLS)
        rows = _cell_edges(0, self._band_height, BARCODE_ROWS)
        self._cells = [
            (slice(rows[r], rows[r + 1]), slice(cols[c], cols[c + 1]))
            for r in range(BARCODE_ROWS)
            for c in range(BARCODE_COLS)
        ]

        self._base_y = np.full((height, width), bg_y, np.uint8)
        self._base_u = np.full((height // 2, width // 2), self._bg[1], np.uint8)
        self._base_v = np.full((height // 2, width // 2), self._bg[2], np.uint8)
        self._base_u[: self._band_height // 2] = _NEUTRAL_C
        self._base_v[: self._band_height // 2] = _NEUTRAL_C
        self._paste(self._base_y, self._base_u, self._base_v, label_patch, *self._label_at)

    def _paste(self, y: Plane, u: Plane, v: Plane, patch: _TextPatch, top: int, left: int) -> None:
        h = min(patch.y.shape[0], self.height - top)
        w = min(patch.y.shape[1], self.width - left)
        if h <= 0 or w <= 0:
            return
        y[top : top + h, left : left + w] = patch.y[:h, :w]
        ct, cl, ch, cw = top // 2, left // 2, h // 2, w // 2
        u[ct : ct + ch, cl : cl + cw] = patch.u[:ch, :cw]
        v[ct : ct + ch, cl : cl + cw] = patch.v[:ch, :cw]

    def bar_left(self, counter: int) -> int:
        phase = (counter % BAR_PERIOD_FRAMES) / BAR_PERIOD_FRAMES
        if self._bar_direction < 0:
            phase = 1 - phase
        return _even(phase * (self.width - self._bar_width))

    def draw(self, counter: int, y: Plane, u: Plane, v: Plane) -> None:
        """Draw frame ``counter`` into the given planes (full size Y, half size U and V)."""
        np.copyto(y, self._base_y)
        np.copyto(u, self._base_u)
        np.copyto(v, self._base_v)

        left = min(self.bar_left(counter), self.width - self._bar_width)
        y[self._bar_top :, left : left + self._bar_width] = self._bar_y
        chroma_rows = slice(self._bar_top // 2, None)
        chroma_cols = slice(left // 2, (left + self._bar_width) // 2)
        u[chroma_rows, chroma_cols] = _NEUTRAL_C
        v[chroma_rows, chroma_cols] = _NEUTRAL_C

        top, x = self._counter_at
        for digit in f"{counter % COUNTER_MODULO:06d}":
            if x + self._digit_step > self.width:
                break
            self._paste(y, u, v, self._digits[int(digit)], top, x)
            x += self._digit_step

        for (rows, cols), white in zip(
            self._cells, _payload_bits(counter, self.camera_index), strict=True
        ):
            y[rows, cols] = _WHITE_Y if white else _BLACK_Y

    def frame(self, counter: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y, u, v = (_plane_view(frame, i) for i in range(3))
        self.draw(counter, y, u, v)
        return frame


def _plane_view(frame: av.VideoFrame, index: int) -> Plane:
    """A writable numpy view of one plane without its row padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


# ---- reading a received frame --------------------------------------------------------------


def _yuv_planes(frame: av.VideoFrame) -> tuple[Plane, Plane, Plane]:
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    y, u, v = (_plane_view(frame, i) for i in range(3))
    return y, u, v


def _sample_boxes(width: int, height: int) -> list[tuple[slice, slice]]:
    """The central half of every cell, from fractions of the received frame's own size."""
    cell_h = height * BAND_FRACTION / BARCODE_ROWS
    cell_w = width / BARCODE_COLS
    boxes: list[tuple[slice, slice]] = []
    for r in range(BARCODE_ROWS):
        for c in range(BARCODE_COLS):
            y0, x0 = (r + 0.25) * cell_h, (c + 0.25) * cell_w
            y1, x1 = (r + 0.75) * cell_h, (c + 0.75) * cell_w
            boxes.append(
                (
                    slice(int(y0), max(int(y0) + 1, int(y1))),
                    slice(int(x0), max(int(x0) + 1, int(x1))),
                )
            )
    return boxes


def read_pattern(frame: av.VideoFrame) -> PatternInfo | None:
    """The counter and camera index a test pattern frame carries, or None when the frame
    carries no readable code (not a test pattern, or too damaged: the CRC catches misreads)."""
    luma = _yuv_planes(frame)[0]
    height, width = luma.shape
    means = [float(luma[box].mean()) for box in _sample_boxes(width, height)]
    white = min(means[i] for i, is_white in _CALIBRATION if is_white)
    black = max(means[i] for i, is_white in _CALIBRATION if not is_white)
    if white - black < _MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    payload = 0
    for mean in means[2:-2]:
        payload = (payload << 1) | (mean > threshold)
    crc = payload & 0xFF
    camera_index = (payload >> 8) & MAX_CAMERA_INDEX
    counter = payload >> (CAMERA_BITS + 8)
    if _crc8(counter.to_bytes(3, "big") + bytes([camera_index])) != crc:
        return None
    return PatternInfo(counter=counter, camera_index=camera_index)


def dominant_colour(frame: av.VideoFrame) -> Colour:
    """The background colour of a test pattern frame (or the most common colour below the
    barcode band of any frame): per-plane medians, so text and the bar do not sway it."""
    y, u, v = _yuv_planes(frame)
    top = _even(y.shape[0] * BAND_FRACTION)
    median_y = float(np.median(y[top::2, ::2]))
    median_u = float(np.median(u[top // 2 :: 2, ::2]))
    median_v = float(np.median(v[top // 2 :: 2, ::2]))
    return yuv_to_rgb(median_y, median_u, median_v)
