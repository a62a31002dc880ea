"""The shipped unit's sandbox, measured by systemd inside the VM, is the figure the README
states, and the daemon works under it (every device real: test_boot)."""

from __future__ import annotations

import re

from tests.vm.image import REPO
from tests.vm.machine import VirtualKit


def readme_exposure() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"`callbox\.service`.*?`systemd-analyze security`: (\d+\.\d+)\)", text)
    assert match, "the README states no systemd-analyze security figure for callbox.service"
    return match.group(1)


def test_systemd_analyze_security_is_the_readme_figure(vm: VirtualKit) -> None:
    result = vm.run("systemd-analyze security --no-pager callbox.service", check=False)
    match = re.search(r"Overall exposure level for callbox\.service: (\d+\.\d+)", result.out)
    assert match, result.out + result.err
    assert match.group(1) == readme_exposure(), result.out
    assert vm.run("systemctl is-active callbox.service").out.strip() == "active"
