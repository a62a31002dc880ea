from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.server import SessionServer
from tests.janus.server import JanusProcess, missing_reason, running_janus
from tests.kits import running_server

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Janus comes from Debian's janus package, which `make test` installs; on a machine
    where it cannot be installed these tests cannot say anything, and say why."""
    reason = missing_reason()
    if reason is None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=f"Janus tests need Janus: {reason}"))


@pytest.fixture
async def janus(tmp_path: Path) -> AsyncIterator[JanusProcess]:
    async with running_janus(tmp_path / "janus") as janus:
        yield janus


@pytest.fixture
async def server(tmp_path: Path, janus: JanusProcess) -> AsyncIterator[SessionServer]:
    async with running_server(
        tmp_path, ring_timeout=3, reconnect_grace=0.5, media="janus", janus=[janus.config()]
    ) as server:
        yield server
