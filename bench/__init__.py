"""Benchmarks: ``make bench`` runs every module listed in ``BENCHMARKS`` and rewrites
``bench/RESULTS.md``. Each module has ``async def run(quick: bool) -> Result``; ``quick``
is the tiny smoke run that ``make test`` does. Results are medians and ratios measured side
by side in one run, because these machines are shared and noisy."""
