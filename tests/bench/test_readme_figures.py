"""Every figure the README (or a page of docs/ it links) quotes as measured comes from the
benchmark it names, as last run (its section of bench/RESULTS.md, or bench/SOAK.md): a
figure typed by hand, or left behind when the benchmarks were run again, fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")  # not the 86 of x86
# "(measured ...)" anywhere, and "Measured (...): ..." up to the end of its sentence.
QUOTED = re.compile(r"\(measured[^)]*\)|Measured \([^)]*\):[^.]*(?:\.\d[^.]*)*\.", re.DOTALL)
SOURCE = re.compile(r"`bench[ /](\w+(?:\.md)?)`")


def numbers(text: str) -> set[str]:
    return {str(float(n)) for n in NUMBER.findall(text)}


def quoted_figures(readme: str) -> list[str]:
    return [m.group(0) for m in QUOTED.finditer(readme)]


def source_text(name: str) -> str:
    """``SOAK.md``, or the section of RESULTS.md that ``python -m bench NAME`` wrote."""
    if name.endswith(".md"):
        return (REPO / "bench" / name).read_text()
    results = (REPO / "bench" / "RESULTS.md").read_text()
    sections = [s for s in results.split("\n## ") if f"bench {name}" in s]
    assert sections, f"bench/RESULTS.md has no section of bench {name}"
    return "\n".join(sections)


def documentation() -> str:
    """The README and the reference pages it links (docs/*.md)."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def test_every_measured_figure_in_the_readme_is_in_the_results_it_names() -> None:
    readme = documentation()
    quotes = quoted_figures(readme)
    assert len(quotes) >= 5, quotes  # the network and soak figures at least
    for quote in quotes:
        source = SOURCE.search(quote)
        assert source is not None, f"names no benchmark: {quote}"
        quoted = numbers(SOURCE.sub("", quote))
        missing = sorted(quoted - numbers(source_text(source[1])))
        assert not missing, f"{quote!r}: {missing} not in bench {source[1]}"


def test_a_figure_not_in_the_results_is_caught() -> None:
    quote = "(measured: 0.7-3.6 s after cuts of 5-20 s, `bench network_faults`)"
    assert quoted_figures(f"gone {quote} and on") == [quote]
    assert numbers(quote) - numbers(source_text("network_faults")) == {"0.7", "3.6", "5.0"}
