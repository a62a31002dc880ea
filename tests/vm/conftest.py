"""The virtual kit lane: one image per recipe (cached), one VM booted for the session's
tests; tests that need a VM of their own (the power cut) boot one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm import image as vm_image
from tests.vm.machine import VirtualKit, booted

# A cold image build (up to 15 minutes) and a boot under TCG on a busy machine fall within
# the first test's time; never a measure of speed.
VM_TIMEOUT_S = 2700


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(VM_TIMEOUT_S))
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def kit_image() -> vm_image.Image:
    return vm_image.ensure()


@pytest.fixture(scope="session")
def vm(kit_image: vm_image.Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualKit]:
    with booted(kit_image, tmp_path_factory.mktemp("vm")) as kit:
        yield kit
