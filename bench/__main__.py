"""``python -m bench [names...] [--quick]``: run benchmarks, print them, rewrite RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from pathlib import Path

from bench.common import Result, machine

# In the order they appear in RESULTS.md.
BENCHMARKS: list[str] = [
    "call_setup",
    "mouth_to_ear",
    "glass_to_glass",
    "startup_memory",
    "media_cpu",
    "passthrough",
    "button_latency",
    "server_load",
    "audio_processing",
    "compositor",
    "janus_cpu",
    "network_faults",
]

RESULTS = Path(__file__).with_name("RESULTS.md")


async def run_all(names: list[str], quick: bool) -> list[Result]:
    results = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        result: Result = await module.run(quick)
        result.notes.append(f"ran in {time.perf_counter() - started:.0f} s")
        result.print()
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no RESULTS.md")
    args = parser.parse_args()
    names = args.names or BENCHMARKS
    results = asyncio.run(run_all(names, args.quick))
    if args.quick or args.names:
        return
    header = [
        "# Benchmark results",
        "",
        f"Measured with `make bench` on {machine()}, {time.strftime('%Y-%m-%d')}.",
        "Each figure is a median over repeated runs; comparisons ran side by side in one run.",
        "",
    ]
    RESULTS.write_text("\n".join(header) + "\n" + "\n".join(r.markdown() for r in results))


if __name__ == "__main__":
    main()
