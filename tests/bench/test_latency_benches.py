"""The latency benchmarks run in a tiny configuration and write their tables: every stage
row, both columns, a total and the targets (no timing is asserted)."""

from bench import call_setup, glass_to_glass, mouth_to_ear


def stage_labels(markdown: str) -> list[str]:
    return [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]


async def test_mouth_to_ear_writes_its_stage_table() -> None:
    result = await mouth_to_ear.run(quick=True)
    table = result.markdown()
    assert "| stage (median ms) | callbox | bare aiortc |" in table
    labels = stage_labels(table)
    for label, _, _ in mouth_to_ear.STAGES:
        assert label in labels
    assert any("mouth to ear" in label for label in labels)
    assert result.figures["markers"] > 0  # at least one marker went all the way
    assert len(result.targets) == 2


async def test_glass_to_glass_writes_its_stage_table() -> None:
    result = await glass_to_glass.run(quick=True)
    table = result.markdown()
    assert "| stage (median ms) | callbox | bare aiortc |" in table
    labels = stage_labels(table)
    for label, _, _ in glass_to_glass.STAGES:
        assert label in labels
    assert any("glass to glass" in label for label in labels)
    assert len(result.targets) == 2


async def test_call_setup_writes_the_fair_and_the_ringing_rows() -> None:
    result = await call_setup.run(quick=True)
    labels = stage_labels(result.markdown())
    assert any(label.startswith("stage: ") for label in labels)
    assert any("ringing flow" in label for label in labels)
    assert {"ratio", "ring_to_first_frame_ms"} <= set(result.figures)
    assert any("cameras opening" in label for label in labels)
    assert "microphones" in result.markdown()  # the baseline is a call: audio beside video
