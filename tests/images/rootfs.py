"""A throwaway root file system with callbox installed by images/install.sh --root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
INSTALL = IMAGES / "install.sh"
FIRSTBOOT = IMAGES / "firstboot.sh"
STOCK_CONFIG_TXT = """\
# A Raspberry Pi OS config.txt, trimmed
dtparam=audio=on
camera_auto_detect=1
[cm4]
otg_mode=1
[all]
arm_64bit=1
"""


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=check, timeout=120
    )


def make_root(root: Path, hostname: str = "porch") -> Path:
    """A root with what Raspberry Pi OS would have for install.sh: /boot/firmware and
    /etc/hostname."""
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(STOCK_CONFIG_TXT)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text(hostname + "\n")
    return root


def install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(INSTALL, "--root", root, *extra)


def add_system_units(root: Path) -> None:
    """What `systemd-analyze verify --root` needs besides our units: the host's system
    units (targets our units order against) and an executable callbox where the venv
    puts it (the repository venv's real console script)."""
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    venv_bin = root / "opt/callbox/venv/bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / ".venv/bin/callbox", venv_bin / "callbox")
    assert os.access(venv_bin / "callbox", os.X_OK)


def group_members(root: Path) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for line in (root / "etc/group").read_text().splitlines():
        name, _, _, users = line.split(":")
        members[name] = [u for u in users.split(",") if u]
    return members


def group_id(root: Path, name: str) -> int:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise KeyError(name)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root: (mode, content hash or link target)."""
    import hashlib

    out: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            out[rel] = (st.st_mode, "-> " + os.readlink(path))
        elif path.is_file():
            out[rel] = (st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = (st.st_mode, "dir")
    return out
