"""Where each person's tile goes on the call's stage, by display mode, as the seed's default
call UI has them:
- ``default``: a grid of everyone (1, 2, 4, 6, 9, 12, 16 cells), the last row centred;
- ``single``: one participant fills the screen (the one picked, else the active speaker),
  the self view floats small in a corner;
- ``spotlight``: one participant large, the others in a filmstrip along the bottom, the self
  view floating small over the large one (it can be dragged within that area).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from appliance.calls.settings import DisplayMode
from appliance.display.geometry import Rect, fit
from appliance.display.scene import Person, Scene

VIDEO_ASPECT = 16 / 9  # tiles without video
FILMSTRIP_FRACTION = 0.2  # of the stage's height
FLOATING_FRACTION = 0.2  # of the spotlight area's width


@dataclass(frozen=True)
class Placement:
    person: Person
    rect: Rect
    floating: bool = False
    main: bool = False


def grid_shape(count: int, portrait: bool = False) -> tuple[int, int]:
    """(columns, rows) of the default grid for ``count`` tiles: 1, 2, 4, 6, 9, 12, 16..."""
    if count <= 1:
        shape = (1, 1)
    elif count == 2:
        shape = (2, 1)
    elif count <= 4:
        shape = (2, 2)
    elif count <= 6:
        shape = (3, 2)
    elif count <= 9:
        shape = (3, 3)
    elif count <= 12:
        shape = (4, 3)
    elif count <= 16:
        shape = (4, 4)
    else:
        columns = math.ceil(math.sqrt(count))
        shape = (columns, math.ceil(count / columns))
    return (shape[1], shape[0]) if portrait else shape


def main_person(scene: Scene) -> Person | None:
    """Who fills the single view or the spotlight: the one picked, else the active speaker
    among the others, else the first of the others, else the kit itself."""
    people = scene.people
    if not people:
        return None
    by_uid = {p.uid: p for p in people}
    others = [p for p in people if not p.is_local]
    if scene.focus in by_uid:
        return by_uid[scene.focus]
    speaker = by_uid.get(scene.speaker or "")
    if speaker is not None and not speaker.is_local:
        return speaker
    return others[0] if others else people[0]


def place(scene: Scene, stage: Rect, gap: int) -> tuple[list[Placement], Rect | None]:
    """The tiles of ``scene`` on ``stage``, in paint order (floating ones last), and the
    area the floating tile may be dragged within (None without one)."""
    people = scene.people
    if not people:
        return [], None
    if scene.mode is DisplayMode.default:
        return _grid(people, stage, gap), None
    main = main_person(scene)
    assert main is not None
    local = next((p for p in people if p.is_local), None)
    floating = local if local is not None and local is not main else None
    others = (
        [p for p in people if p is not main and p is not floating]
        if scene.mode is DisplayMode.spotlight
        else []
    )
    area = stage
    placements: list[Placement] = []
    if others:
        strip_h = round(stage.h * FILMSTRIP_FRACTION)
        area = Rect(stage.x, stage.y, stage.w, stage.h - strip_h)
        strip = Rect(stage.x, area.bottom, stage.w, strip_h)
        placements += _filmstrip(others, strip, gap)
    main_rect = fit(area.inset(gap), _aspect(main))
    placements.insert(0, Placement(main, main_rect, main=True))
    if floating is None:
        return placements, None
    floating_area = area.inset(gap)
    placements.append(_floating(floating, floating_area, scene, stage.h / 1080))
    return placements, floating_area


def _aspect(person: Person) -> float:
    return person.video_aspect or VIDEO_ASPECT


def _grid(people: tuple[Person, ...], stage: Rect, gap: int) -> list[Placement]:
    count = len(people)
    columns, rows = grid_shape(count, portrait=stage.h > stage.w)
    cell_w = (stage.w - (columns + 1) * gap) / columns
    cell_h = (stage.h - (rows + 1) * gap) / rows
    placements = []
    for index, person in enumerate(people):
        row, column = divmod(index, columns)
        in_row = min(columns, count - row * columns)
        left = stage.x + gap + (columns - in_row) * (cell_w + gap) / 2
        cell = Rect(
            round(left + column * (cell_w + gap)),
            round(stage.y + gap + row * (cell_h + gap)),
            int(cell_w),
            int(cell_h),
        )
        placements.append(Placement(person, fit(cell, _aspect(person))))
    return placements


def _filmstrip(people: list[Person], strip: Rect, gap: int) -> list[Placement]:
    count = len(people)
    cell_h = strip.h - 2 * gap
    cell_w = min((strip.w - (count + 1) * gap) / count, cell_h * VIDEO_ASPECT)
    left = strip.x + (strip.w - count * cell_w - (count - 1) * gap) / 2
    return [
        Placement(
            person,
            fit(
                Rect(round(left + i * (cell_w + gap)), strip.y + gap, int(cell_w), cell_h),
                _aspect(person),
            ),
        )
        for i, person in enumerate(people)
    ]


def _floating(person: Person, area: Rect, scene: Scene, unit: float) -> Placement:
    aspect = _aspect(person)
    w = area.w * FLOATING_FRACTION
    h = min(w / aspect, area.h / 3)
    size = fit(Rect(0, 0, max(2, round(w)), max(2, round(h))), aspect)
    margin = max(2, round(16 * unit))
    if scene.floating_at is not None and not scene.pip:
        rect = size.moved_to(*scene.floating_at)
    else:
        rect = size.moved_to(area.right - size.w - margin, area.bottom - size.h - margin)
    return Placement(person, rect.clamped_into(area), floating=True)
