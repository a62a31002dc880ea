"""The virtual kit lane: one image per recipe (cached), one VM booted for the session's
tests; tests that need a VM of their own (the power cut) boot one."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm import image as vm_image
from tests.vm.machine import VirtualKit, booted

# A cold image build (up to 15 minutes) and a boot under TCG on a busy machine fall within
# the first test's time; never a measure of speed.
VM_TIMEOUT_S = 2700

# Per failed test, a few lines on the calls' connections, printed again at the very end of
# the run: CI keeps only the end of a long log.
DIGESTS = pytest.StashKey[list[str]]()
CONNECTION_LINES = "connection to|consent to send|restarting"


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failing VM test carries what the guest's callbox was doing: its state, restarts and
    journal, and the far kit's (a reset connection or a timeout says nothing on its own)."""
    outcome = yield
    report = outcome.get_result()
    kit = getattr(item, "funcargs", {}).get("vm")
    if not report.failed or not isinstance(kit, VirtualKit):
        return
    if not kit.running:
        report.sections.append(("virtual kit", f"QEMU is not running\n{kit.console_tail()}"))
        return
    try:

        def guest(command: str) -> str:
            return kit.run(command, check=False, timeout=120).out

        state = guest(
            "systemctl show -p ActiveState -p NRestarts -p ExecMainStatus callbox.service; uptime"
        )
        crash = crashing_thread(
            guest("journalctl -b -u callbox.service --no-pager -o cat | grep -A40 'Current thread'")
        )
        if crash:
            report.sections.append(("virtual kit: the thread that crashed callbox", crash))
        core = guest(
            "coredumpctl info --no-pager -1 2>/dev/null | grep -A60 'Stack trace of thread'"
        )
        if core:
            report.sections.append(("virtual kit: the last core's native stacks", core))
        # The ALSA side: each loopback cable and PCM's state (a stuck PCM keeps its pointers).
        alsa = guest(
            "grep -H . /proc/asound/Loopback/cable#* /proc/asound/Loopback/pcm*/sub*/status"
        )
        report.sections.append(("virtual kit: ALSA loopback", alsa))
        audio_log = guest(
            "journalctl -b -u callbox.service --no-pager -o cat "
            "| grep -E 'hal.audio|appliance.audio|appliance.media.(remote|routes)|alsa' | tail -40"
        )
        report.sections.append(("virtual kit: audio log", audio_log))
        # Every traceback the kit logged: an error caught and logged, a task that died.
        tracebacks = guest(
            "journalctl -b -u callbox.service --no-pager -o cat "
            "| grep -B1 -A25 '^Traceback' | grep -v '^--$' | tail -120"
        )
        if tracebacks:
            report.sections.append(("virtual kit: tracebacks", tracebacks))
        digest = [f"{item.nodeid}: callbox {' '.join(state.split())}"]
        for unit in ("callbox.service", "callbox-far.service"):
            lines = guest(
                f"journalctl -b -u {unit} --no-pager -o cat | grep -E '{CONNECTION_LINES}'"
            ).splitlines()
            restarts = sum("restarting" in line for line in lines)
            lapses = sum("consent to send lapsed" in line for line in lines)
            digest.append(f"  {unit}: {restarts} connection restarts, {lapses} consent lapses")
            digest += [f"    {line[-150:]}" for line in lines[-4:]]
        item.config.stash.setdefault(DIGESTS, []).extend(digest)
        report.sections.append(("virtual kit: callbox.service", state + kit.journal(lines=150)))
        report.sections.append(("virtual kit: far kit", kit.journal("callbox-far", lines=60)))
    except Exception as error:  # the report must not hide the failure
        report.sections.append(("virtual kit", f"could not read the guest: {error}"))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    digests = config.stash.get(DIGESTS, [])
    if digests:
        terminalreporter.section("virtual kit: the calls' connections at each failure")
        for line in digests:
            terminalreporter.write_line(line)


def crashing_thread(journal: str) -> str:
    """The last "Current thread" stack faulthandler wrote (it comes after every other
    thread's, which a short report would cut off)."""
    blocks = journal.split("Current thread")
    if len(blocks) < 2:
        return ""
    lines = ("Current thread" + blocks[-1]).splitlines()
    stack = [lines[0]] + [line for line in lines[1:] if line.lstrip().startswith("File ")]
    return "\n".join(stack)
