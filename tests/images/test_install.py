"""images/install.sh into a throwaway root, and the first-boot step it installs."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from appliance.config import load
from tests.images.rootfs import (
    FIRSTBOOT,
    INSTALL,
    REPO,
    group_id,
    group_members,
    install,
    make_root,
    run,
    snapshot,
)

DEVICE_GROUPS = ["video", "audio", "gpio", "bluetooth", "render", "input"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


def test_install_into_a_root_makes_a_kit(root: Path) -> None:
    result = install(root)
    assert "not building /opt/callbox/venv" in result.stdout

    # The unprivileged user, in every device group it needs.
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").open()}
    user = passwd["callbox"]
    assert user[5] == "/var/lib/callbox" and user[6].strip() == "/usr/sbin/nologin"
    assert int(user[2]) > 0
    members = group_members(root)
    for group in DEVICE_GROUPS:
        assert "callbox" in members[group], group

    # The units as written in systemd/, the kit's unit and first boot enabled.
    units = root / "etc/systemd/system"
    for unit in ("callbox.service", "callbox-server.service", "callbox-firstboot.service"):
        assert (units / unit).read_text() == (REPO / "systemd" / unit).read_text()
    wants = units / "multi-user.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == [
        "callbox-firstboot.service",
        "callbox.service",
    ]
    assert os.readlink(wants / "callbox.service") == "/etc/systemd/system/callbox.service"

    # The first-boot step, the docs, the command, the config directory.
    firstboot = root / "usr/local/libexec/callbox-firstboot"
    assert firstboot.read_bytes() == FIRSTBOOT.read_bytes()
    assert firstboot.stat().st_mode & 0o777 == 0o755
    assert (root / "usr/share/doc/callbox/README.md").read_text().startswith("# callbox")
    assert os.readlink(root / "usr/local/bin/callbox") == "/opt/callbox/venv/bin/callbox"
    config_dir = (root / "etc/callbox").stat()
    assert stat.S_IMODE(config_dir.st_mode) == 0o750
    assert (config_dir.st_uid, config_dir.st_gid) == (0, group_id(root, "callbox"))

    # The source the venv is built from, install.sh included.
    src = root / "opt/callbox/src"
    assert (src / "appliance/daemon.py").read_text() == (REPO / "appliance/daemon.py").read_text()
    assert os.access(src / "images/install.sh", os.X_OK)
    assert not list(src.rglob("__pycache__"))


def test_config_txt_gets_camera_and_hdmi_for_all_boards_once(root: Path) -> None:
    install(root)
    text = (root / "boot/firmware/config.txt").read_text()
    block = text[text.index("# >>> callbox >>>") :]
    settings = [line for line in block.splitlines() if line and not line.startswith("#")]
    # [all] first, so nothing lands in the [cm4] filter; settings the stock file already
    # has for all boards are not repeated.
    assert settings == [
        "[all]",
        "dtoverlay=vc4-kms-v3d",
        "max_framebuffers=2",
        "display_auto_detect=1",
        "disable_overscan=1",
    ]
    assert text.startswith("# A Raspberry Pi OS config.txt")  # the original is kept
    assert text.count("camera_auto_detect=1") == 1


def test_running_again_changes_nothing(root: Path) -> None:
    install(root)
    before = snapshot(root)
    install(root)
    assert snapshot(root) == before


def test_server_role_enables_the_session_server_instead(root: Path) -> None:
    install(root)
    install(root, "--role", "server")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == [
        "callbox-firstboot.service",
        "callbox-server.service",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "phone"], "--role phone: expected kit or server"),
        (["--root", "/nonexistent/dir"], "--root /nonexistent/dir: no such directory"),
        (["--frobnicate"], "unknown argument: --frobnicate"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], message: str) -> None:
    result = run(INSTALL, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_first_boot_writes_a_valid_config_and_shows_its_token(root: Path) -> None:
    install(root)
    result = run(root / "usr/local/libexec/callbox-firstboot", "--root", root)
    path = root / "etc/callbox/callbox.toml"
    config, _ = load(path)
    assert config.kit.uid == "porch"
    assert config.api.token is not None and len(config.api.token) == 64
    assert config.server.admin_key is not None and config.server.admin_key != config.api.token
    assert config.api.listen == "0.0.0.0:8080"
    assert str(config.state_dir) == "/var/lib/callbox"
    # The token is on the screen (stdout), and only there: stderr goes to the journal.
    assert re.search(rf"^\s+{config.api.token}$", result.stdout, re.MULTILINE)
    assert config.api.token not in result.stderr
    # TLS by default on the LAN: the pages, the REST API and the session server.
    assert config.api.tls.enabled and config.server.tls.enabled
    assert config.server.url.startswith("https://")
    assert "https://porch.local:8080/" in result.stdout
    assert "http://" not in result.stdout
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (0, group_id(root, "callbox"))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left

    again = run(root / "usr/local/libexec/callbox-firstboot", "--root", root)
    assert "exists; nothing to do" in again.stderr
    assert load(path)[0].api.token == config.api.token


def test_first_boot_succeeds_when_the_console_cannot_be_written(root: Path) -> None:
    # The console's getty hangs it up as it starts, and every write to it then fails
    # (EIO); here standard output is /dev/full (ENOSPC). The config is what matters.
    install(root)
    with open("/dev/full", "w") as console:
        result = subprocess.run(
            [str(root / "usr/local/libexec/callbox-firstboot"), "--root", str(root),
             "--hold", "30"],
            stdout=console, stderr=subprocess.PIPE, text=True, timeout=20, check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "could not show the token on the console" in result.stderr
    config, _ = load(root / "etc/callbox/callbox.toml")
    assert config.api.token is not None and config.api.token not in result.stderr


def test_plain_http_is_opt_in(root: Path) -> None:
    install(root)
    result = run(root / "usr/local/libexec/callbox-firstboot", "--root", root, "--plain-http")
    config, _ = load(root / "etc/callbox/callbox.toml")
    assert not config.api.tls.enabled and not config.server.tls.enabled
    assert "http://porch.local:8080/" in result.stdout


def test_kits_flashed_from_the_image_get_different_ids(tmp_path: Path) -> None:
    uids = []
    for kit, machine_id in (("a", "3f2a9c" + "0" * 26), ("b", "77be01" + "0" * 26)):
        root = make_root(tmp_path / kit, hostname="callbox")
        (root / "etc/machine-id").write_text(machine_id + "\n")
        install(root)
        run(FIRSTBOOT, "--root", root)
        uids.append(load(root / "etc/callbox/callbox.toml")[0].kit.uid)
    assert uids == ["callbox-3f2a9c", "callbox-77be01"]


def test_first_boot_needs_the_callbox_group(root: Path) -> None:
    for group_file in ("missing", "without callbox"):
        if group_file != "missing":
            (root / "etc/group").write_text("video:x:44:\n")
        result = run(FIRSTBOOT, "--root", root, check=False)
        assert result.returncode == 1
        assert "no callbox group" in result.stderr
        assert not (root / "etc/callbox/callbox.toml").exists()
