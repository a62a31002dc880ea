"""The README's shell commands, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_blocks(heading: str) -> str:
    """The ``sh`` blocks of the README section under ``heading``, joined."""
    section = README.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, re.DOTALL))


def without_comment(line: str) -> str:
    return line.split("  #", 1)[0].strip()


def lines_running(text: str, program: str) -> list[str]:
    """Each ``program`` command of a block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [without_comment(line) for line in joined.splitlines() if line.startswith(program + " ")]
