from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.server import SessionServer
from tests.kits import KitFactory, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SessionServer]:
    async with running_server(tmp_path, ring_timeout=3, reconnect_grace=0.5) as server:
        yield server


@pytest.fixture
async def kits(server: SessionServer, tmp_path: Path) -> AsyncIterator[KitFactory]:
    factory = KitFactory(server, tmp_path)
    try:
        yield factory
    finally:
        await factory.close()
