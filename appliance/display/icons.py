"""Simple line icons for buttons and labels, drawn with Pillow into a box."""

from __future__ import annotations

from collections.abc import Callable

from PIL import ImageDraw

Box = tuple[float, float, float, float]
Ink = tuple[int, int, int, int]
Point = tuple[float, float]


class _Pen:
    """Coordinates as fractions of the box; line widths as fractions of its size."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: Box, ink: Ink) -> None:
        self.draw = draw
        self.x0, self.y0 = box[0], box[1]
        self.w, self.h = box[2] - box[0], box[3] - box[1]
        self.ink = ink

    def p(self, x: float, y: float) -> Point:
        return (self.x0 + x * self.w, self.y0 + y * self.h)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        return (*self.p(x0, y0), *self.p(x1, y1))

    def stroke(self, fraction: float) -> int:
        return max(1, round(min(self.w, self.h) * fraction))

    def line(self, points: list[tuple[float, float]], width: float = 0.09) -> None:
        self.draw.line(
            [self.p(x, y) for x, y in points],
            fill=self.ink,
            width=self.stroke(width),
            joint="curve",
        )

    def polygon(self, points: list[tuple[float, float]]) -> None:
        self.draw.polygon([self.p(x, y) for x, y in points], fill=self.ink)

    def rounded(self, x0: float, y0: float, x1: float, y1: float, radius: float) -> None:
        self.draw.rounded_rectangle(
            self.box(x0, y0, x1, y1), radius=radius * min(self.w, self.h), fill=self.ink
        )

    def ellipse(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.draw.ellipse(self.box(x0, y0, x1, y1), fill=self.ink)

    def arc(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        start: float,
        end: float,
        width: float = 0.09,
    ) -> None:
        self.draw.arc(self.box(x0, y0, x1, y1), start, end, fill=self.ink, width=self.stroke(width))


def _mic(pen: _Pen) -> None:
    pen.rounded(0.36, 0.05, 0.64, 0.6, 0.14)
    pen.arc(0.22, 0.25, 0.78, 0.75, 0, 180)
    pen.line([(0.5, 0.75), (0.5, 0.92)])
    pen.line([(0.32, 0.93), (0.68, 0.93)])


def _slash(pen: _Pen) -> None:
    pen.line([(0.12, 0.1), (0.88, 0.9)], 0.1)


def _mic_off(pen: _Pen) -> None:
    _mic(pen)
    _slash(pen)


def _camera(pen: _Pen) -> None:
    pen.rounded(0.04, 0.26, 0.66, 0.74, 0.1)
    pen.polygon([(0.7, 0.5), (0.96, 0.3), (0.96, 0.7)])


def _camera_off(pen: _Pen) -> None:
    _camera(pen)
    _slash(pen)


def _switch_camera(pen: _Pen) -> None:
    pen.arc(0.14, 0.14, 0.86, 0.86, 200, 340, 0.1)
    pen.polygon([(0.78, 0.2), (0.95, 0.42), (0.7, 0.44)])
    pen.arc(0.14, 0.14, 0.86, 0.86, 20, 160, 0.1)
    pen.polygon([(0.22, 0.8), (0.05, 0.58), (0.3, 0.56)])
    pen.ellipse(0.38, 0.38, 0.62, 0.62)


def _speaker(pen: _Pen) -> None:
    pen.polygon([(0.08, 0.36), (0.26, 0.36), (0.5, 0.14), (0.5, 0.86), (0.26, 0.64), (0.08, 0.64)])
    pen.arc(0.36, 0.3, 0.72, 0.7, -60, 60, 0.08)
    pen.arc(0.34, 0.14, 0.94, 0.86, -60, 60, 0.08)


def _earpiece(pen: _Pen) -> None:
    pen.rounded(0.26, 0.04, 0.74, 0.96, 0.14)
    pen.draw.rounded_rectangle(pen.box(0.38, 0.12, 0.62, 0.18), radius=1, fill=(0, 0, 0, 0))


def _headphones(pen: _Pen) -> None:
    pen.arc(0.12, 0.1, 0.88, 0.9, 180, 360, 0.09)
    pen.rounded(0.08, 0.5, 0.3, 0.9, 0.08)
    pen.rounded(0.7, 0.5, 0.92, 0.9, 0.08)


def _bluetooth(pen: _Pen) -> None:
    pen.line([(0.28, 0.3), (0.72, 0.7), (0.5, 0.9), (0.5, 0.1), (0.72, 0.3), (0.28, 0.7)], 0.09)


def _video_call(pen: _Pen) -> None:
    _camera(pen)


def _record(pen: _Pen) -> None:
    pen.ellipse(0.2, 0.2, 0.8, 0.8)


def _stop(pen: _Pen) -> None:
    pen.rounded(0.24, 0.24, 0.76, 0.76, 0.06)


def _end(pen: _Pen) -> None:
    # A handset lying down: a thick arc with its two ear pieces.
    pen.arc(0.02, 0.3, 0.98, 1.1, 200, 340, 0.16)
    pen.rounded(0.02, 0.46, 0.26, 0.66, 0.06)
    pen.rounded(0.74, 0.46, 0.98, 0.66, 0.06)


_ICONS: dict[str, Callable[[_Pen], None]] = {
    "mic": _mic,
    "mic-off": _mic_off,
    "camera": _camera,
    "camera-off": _camera_off,
    "switch-camera": _switch_camera,
    "speaker": _speaker,
    "earpiece": _earpiece,
    "headphones": _headphones,
    "bluetooth": _bluetooth,
    "video-call": _video_call,
    "record": _record,
    "stop": _stop,
    "end": _end,
}
NAMES = frozenset(_ICONS)


def draw(draw: ImageDraw.ImageDraw, name: str, box: Box, ink: Ink) -> None:
    """Draw icon ``name`` into ``box`` (already in the drawing's scaled pixels)."""
    try:
        paint = _ICONS[name]
    except KeyError:
        raise ValueError(f"no icon {name!r}") from None
    paint(_Pen(draw, box, ink))
