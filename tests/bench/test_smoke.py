"""Every benchmark runs (tiny sizes) so `make bench` cannot rot; no timing is asserted."""

import importlib

import pytest

from bench.__main__ import BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
async def test_benchmark_runs(name: str) -> None:
    result = await importlib.import_module(f"bench.{name}").run(quick=True)
    assert result.rows
    assert result.figures
