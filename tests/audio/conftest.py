from pathlib import Path

import pytest

from tests.audio.room import Scenario, build_scenario


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The standard call: espeak-ng's voices at the far and the near end, with noise."""
    workdir: Path = tmp_path_factory.mktemp("speech")
    return build_scenario(workdir)
