from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.daemon import Daemon
from tests.api.daemon import Api, api_client, running_daemon


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(tmp_path) as daemon:
        yield daemon


@pytest.fixture
async def api(kit: Daemon) -> AsyncIterator[Api]:
    async with api_client(kit) as client:
        yield client
