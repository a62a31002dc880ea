"""Real system software for the real drivers: alsa-lib with a test configuration, BlueZ as
python-dbusmock's template on a private system bus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hal.real.alsa import AlsaSetup, write_alsa_config
from tests.hal.real.bluez import BluezMock, mock_bluez
from tests.hal.real.kms import fake_pykms

MIC_HZ = 700.0


@pytest.fixture
def alsa_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlsaSetup]:
    """alsa-lib reads this test's asound.conf (it reloads when ALSA_CONFIG_PATH changes)."""
    setup = write_alsa_config(tmp_path / "alsa", mic_tone_hz=MIC_HZ)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(setup.root / "asound.conf"))
    yield setup
    setup.close()


@pytest.fixture
def bluez(monkeypatch: pytest.MonkeyPatch) -> Iterator[BluezMock]:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "")  # restored after the private bus
    with mock_bluez() as mock:
        yield mock


@pytest.fixture
def pykms(monkeypatch: pytest.MonkeyPatch) -> Any:
    """pykms faked over a made-up DRM device, checked against the real kms++ build."""
    return fake_pykms(monkeypatch)
