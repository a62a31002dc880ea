"""pykms, mocked, with dumb framebuffers in shared memory the test reads back."""

from __future__ import annotations

import mmap
import os
import sys
from typing import Any
from unittest.mock import MagicMock

import numpy as np
from pytest_mock import MockerFixture


class DumbBuffer:
    def __init__(self, card: Any, width: int, height: int, fourcc: str) -> None:
        assert fourcc == "XR24"
        self.width, self.height = width, height
        self.id = id(self)
        self._stride = width * 4 + 64  # drivers pad rows
        self._fd = os.memfd_create("dumb")
        os.ftruncate(self._fd, self._stride * height)

    def fd(self, plane: int) -> int:
        return self._fd

    def stride(self, plane: int) -> int:
        return self._stride

    def pixels(self) -> np.ndarray[Any, Any]:
        with mmap.mmap(self._fd, self._stride * self.height, mmap.MAP_SHARED, mmap.PROT_READ) as m:
            rows = np.frombuffer(m, np.uint8).reshape(self.height, self._stride).copy()
        return rows[:, : self.width * 4].reshape(self.height, self.width, 4)


def mock_pykms(mocker: MockerFixture) -> MagicMock:
    """pykms as MagicMocks (importable while the test runs): one connected HDMI connector
    with a 1920x1200 mode; ``module.buffers`` are the framebuffers made."""
    module = MagicMock(name="pykms")
    module.Card.return_value.has_atomic = True
    resources = module.ResourceManager.return_value
    connector = resources.reserve_connector.return_value
    connector.connected.return_value = True
    connector.fullname = "HDMI-A-1"
    mode = connector.get_default_mode.return_value
    mode.hdisplay, mode.vdisplay = 1920, 1200
    buffers: list[DumbBuffer] = []

    def dumb(*args: Any) -> DumbBuffer:
        buffers.append(DumbBuffer(*args))
        return buffers[-1]

    module.DumbFramebuffer.side_effect = dumb
    module.buffers = buffers
    mocker.patch.dict(sys.modules, {"pykms": module})
    return module
