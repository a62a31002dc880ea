"""A process that forks config writers for ``test_storage``: each child rewrites
``overrides.toml`` with ``save_overrides``, generation after generation, until it is killed.

stdin: one line per child, the generation it starts from. stdout: ``pid P`` when a child
starts, ``done N`` after each write it completes, ``ended P STATUS`` once it is gone. Forking
from one warm process keeps each round to milliseconds, not an interpreter's start-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from appliance.config import save_overrides

JANUS_SERVERS = 48  # a few kilobytes of TOML, so a write takes a while


def generation(n: int) -> dict[str, Any]:
    """A valid REST layer that differs in every generation."""
    return {
        "kit": {"name": f"Generation {n}"},
        "calls": {"auto_answer": n % 2 == 0},
        "server": {
            "media": "janus",
            "janus": [
                {"url": f"ws://janus-{i}.generation-{n}.lan:8188/janus"}
                for i in range(JANUS_SERVERS)
            ],
        },
    }


def main() -> None:
    state = Path(sys.argv[1])
    out = sys.stdout.fileno()
    for line in sys.stdin:
        start = int(line)
        announced_r, announced_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            # Not a write before the parent has said "pid": on a busy machine the child
            # could otherwise say "done" first.
            os.close(announced_w)
            os.read(announced_r, 1)
            os.close(announced_r)
            n = start
            while True:
                save_overrides(state, generation(n))
                os.write(out, f"done {n}\n".encode())
                n += 1
        os.close(announced_r)
        os.write(out, f"pid {pid}\n".encode())
        os.close(announced_w)  # the child's read returns: it may write
        _, status = os.waitpid(pid, 0)
        os.write(out, f"ended {pid} {status}\n".encode())


if __name__ == "__main__":
    main()
