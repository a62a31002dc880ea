"""A kit's first call loads the media stack (aiortc and what it brings) in a worker thread:
on the event loop, that import held every other task for a second or more on a Pi, and
past the session server's ping timeout in the emulated kit.

This test process has long imported aiortc, so a fresh interpreter makes the first call."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_CALL = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys, tempfile, threading
    from pathlib import Path

    importers = []  # which thread imported aiortc

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "aiortc":
                importers.append(threading.current_thread() is threading.main_thread())
            return None

    sys.meta_path.insert(0, Watch())

    from tests.kits import KitFactory, running_server

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            async with running_server(Path(tmp)) as server:
                kits = KitFactory(server, Path(tmp))
                try:
                    assert "aiortc" not in sys.modules, "loaded before any call"
                    a = await kits("room-a")
                    b = await kits("room-b")
                    await a.join("first")
                    await b.join("first")
                    await a.wait_for_video_from("room-b", timeout=60)
                    await b.wait_for_video_from("room-a", timeout=60)
                finally:
                    await kits.close()

    asyncio.run(main())
    print("aiortc imported on the loop's thread:", importers)
    assert importers == [False], importers
    """
)


def test_the_first_call_imports_the_media_stack_off_the_event_loop() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "imported on the loop's thread: [False]" in done.stdout
