"""The soak benchmark's short version (``make soak`` runs it for 30 minutes): the call
holds, every latency marker is heard once, memory is sampled. Its bounds are checked only
in the full run (bench/soak.py), as timing belongs to benchmarks."""

import os

from bench import soak


async def test_a_short_soak_hears_every_marker_and_samples_memory() -> None:
    result = await soak.run(quick=True)
    figures = result.figures
    assert figures["in_call_at_the_end"] is True
    assert figures["markers_sent"] >= 5
    assert figures["markers_heard"] == figures["markers_sent"]
    assert all(latency > 0 for latency in figures["latency_ms"])  # heard after it was sent
    assert figures["toggles"] >= 2  # B muted and paused its camera, and came back
    rss = [row[1] for row in result.rows]
    assert len(rss) >= 5 and all(value > 0 for value in rss)
    # A leak the toggles and the hiccup would leave: tasks, threads and descriptors held at
    # the end are those held once warm (one task of slack: a send can be in flight). The
    # default executor's workers grow with load, never past the executor's own bound.
    warm, end = figures["held_after_warm_up"], figures["held_at_the_end"]
    assert end.threads <= warm.threads and end.fds <= warm.fds, (warm, end)
    assert all(held.pool_threads <= min(32, (os.cpu_count() or 1) + 4) for held in figures["held"])
    assert end.tasks <= warm.tasks + 1, (warm, end)
