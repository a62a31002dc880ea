"""Integer rectangles on the screen."""

from __future__ import annotations

from dataclasses import dataclass

Colour = tuple[int, int, int]  # (r, g, b), 0-255


@dataclass(frozen=True, order=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2

    def contains_point(self, x: int, y: int) -> bool:
        return self.x <= x < self.right and self.y <= y < self.bottom

    def contains(self, other: Rect) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def intersects(self, other: Rect) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def intersection(self, other: Rect) -> Rect:
        x, y = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x, y, max(0, right - x), max(0, bottom - y))

    def union(self, other: Rect) -> Rect:
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Rect(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)

    def inset(self, dx: int, dy: int | None = None) -> Rect:
        dy = dx if dy is None else dy
        return Rect(self.x + dx, self.y + dy, max(0, self.w - 2 * dx), max(0, self.h - 2 * dy))

    def moved_to(self, x: int, y: int) -> Rect:
        return Rect(x, y, self.w, self.h)

    def clamped_into(self, outer: Rect) -> Rect:
        """The same size, moved the least so it lies inside ``outer`` (as far as it fits)."""
        x = min(max(self.x, outer.x), outer.right - self.w)
        y = min(max(self.y, outer.y), outer.bottom - self.h)
        return Rect(max(x, outer.x), max(y, outer.y), self.w, self.h)

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) for indexing an (H, W, ...) array."""
        return slice(self.y, self.bottom), slice(self.x, self.right)


def even(value: float) -> int:
    """Rounded down to an even number, at least 2 (yuv420p needs even sizes)."""
    return max(2, int(value) // 2 * 2)


def fit(box: Rect, aspect: float) -> Rect:
    """The largest rectangle of ``aspect`` (width / height) with even sides, centred in
    ``box``."""
    if box.w / aspect <= box.h:
        w_even = even(box.w)
        h_even = even(w_even / aspect)
    else:
        h_even = even(box.h)
        w_even = even(h_even * aspect)
    return Rect(box.x + (box.w - w_even) // 2, box.y + (box.h - h_even) // 2, w_even, h_even)


def merge_rects(rects: list[Rect], bounds: Rect) -> list[Rect]:
    """Dirty rectangles to repaint: clipped to ``bounds``, overlapping ones joined (so no
    pixel is painted twice)."""
    pending = [r.intersection(bounds) for r in rects]
    pending = [r for r in pending if not r.empty]
    merged: list[Rect] = []
    while pending:
        current = pending.pop()
        joined = True
        while joined:
            joined = False
            for other in list(merged):
                if current.intersects(other):
                    merged.remove(other)
                    current = current.union(other)
                    joined = True
        merged.append(current)
    return merged
