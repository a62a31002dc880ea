"""What every benchmark shares: results, tables, timing and the machine description."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """One benchmark's outcome: named figures, a table for people, and its targets."""

    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        if not self.columns:
            return ""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.table()]
        if self.targets:
            parts += ["", "| target | measured | met |", "|---|---|---|"]
            parts += [
                f"| {t.description} | {_fmt(t.measured)} | {'yes' if t.met else '**no**'} |"
                for t in self.targets
            ]
        parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figures": self.figures,
            "targets": [t.__dict__ for t in self.targets],
        }

    def print(self) -> None:
        print(json.dumps(self.to_json(), indent=2, default=str))
        print(self.markdown())


@dataclass
class Target:
    description: str
    measured: Any
    met: bool


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_and_wall() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    try:
        yield out
    finally:
        out["cpu"] = cpu_seconds() - cpu0
        out["wall"] = time.perf_counter() - wall0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"
