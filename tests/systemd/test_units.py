"""The unit files: systemd-analyze verify (in an installed root) and security, and what
the issue asks each of them to say."""

import re
import shutil
from pathlib import Path

import pytest

from tests.images.rootfs import REPO, add_system_units, install, make_root, run

UNITS = ["callbox.service", "callbox-server.service", "callbox-firstboot.service"]
EXPOSURE_LIMIT = 3.0


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; systemd allows a key more than once."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing: `make test` installs it (APT_TEST: systemd)"
    return path


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_root(tmp_path_factory.mktemp("verify") / "root")
    install(root)
    add_system_units(root)
    return root


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_passes(installed_root: Path, unit: str) -> None:
    result = run(analyze(), "verify", f"--root={installed_root}", unit, check=False)
    # verify exits 0 on settings it ignores, so any output at all is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def exposure(unit: str) -> float:
    result = run(analyze(), "security", "--offline=true", REPO / "systemd" / unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:]
    return float(match[1])


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_low(unit: str) -> None:
    assert exposure(unit) <= EXPOSURE_LIMIT


def test_the_appliance_unit_is_notify_watchdog_restart_and_sandboxed() -> None:
    unit = parse_unit(REPO / "systemd/callbox.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["ExecStart"] == [
        "/opt/callbox/venv/bin/callbox run --config /etc/callbox/callbox.toml"
    ]
    assert service["WatchdogSec"] and service["Restart"] == ["always"]
    assert unit["Unit"]["StartLimitIntervalSec"] and unit["Unit"]["StartLimitBurst"]
    assert service["User"] == ["callbox"]
    assert service["SupplementaryGroups"][0].split() == [
        "video", "audio", "gpio", "bluetooth", "render", "input"
    ]  # fmt: skip
    for key, value in {
        "ProtectSystem": "strict",
        "StateDirectory": "callbox",
        "ConfigurationDirectory": "callbox",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert service[key] == [value], key
    allowed = {entry.split()[0] for entry in service["DeviceAllow"]}
    assert allowed >= {
        "char-video4linux",  # camera, its sub-devices and the H.264 codec
        "char-media",  # libcamera's media controller
        "char-dma_heap",  # camera buffers
        "char-alsa",
        "char-drm",  # HDMI through KMS, render nodes
        "char-fb",  # the display's framebuffer fallback
        "char-gpiochip",
        "char-input",
    }
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_server_unit_runs_the_server_alone_without_devices() -> None:
    service = parse_unit(REPO / "systemd/callbox-server.service")["Service"]
    assert service["Type"] == ["notify"]
    assert service["ExecStart"][0].startswith("/opt/callbox/venv/bin/callbox server ")
    assert service["PrivateDevices"] == ["yes"]
    assert "SupplementaryGroups" not in service
    assert service["User"] == ["callbox"] and service["Restart"] == ["always"]


def test_first_boot_runs_once_before_the_appliance_and_shows_the_screen() -> None:
    unit = parse_unit(REPO / "systemd/callbox-firstboot.service")
    assert unit["Unit"]["ConditionPathExists"] == ["!/etc/callbox/callbox.toml"]
    assert "callbox.service" in unit["Unit"]["Before"][0].split()
    assert unit["Service"]["StandardOutput"] == ["tty"]
    assert unit["Service"]["TTYPath"] == ["/dev/tty1"]
    assert unit["Service"]["ExecStart"][0].startswith("/usr/local/libexec/callbox-firstboot ")
    appliance = parse_unit(REPO / "systemd/callbox.service")["Unit"]
    assert "callbox-firstboot.service" in appliance["After"][0].split()
