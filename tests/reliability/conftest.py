from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.server.conftest import make_server

__all__ = ["make_server"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session
