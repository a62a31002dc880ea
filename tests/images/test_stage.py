"""The pi-gen stage, images/build.sh, and shellcheck on every script in images/."""

import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.images.rootfs import IMAGES, REPO, run

STAGE = IMAGES / "stage-callbox"
SCRIPTS = [
    IMAGES / "build.sh",
    IMAGES / "install.sh",
    IMAGES / "firstboot.sh",
    STAGE / "prerun.sh",
    STAGE / "EXPORT_IMAGE",
    *sorted(STAGE.glob("*/*.sh")),
]
# What pi-gen's run_sub_stage acts on in a sub-stage directory, besides files/.
PIGEN_FILE = re.compile(r"^\d\d-(run\.sh|run-chroot\.sh|packages|packages-nr|debconf|patches)$")
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: `make test` installs it (APT_TEST)"
    result = run(shellcheck, "--shell=bash", "--severity=style", *SCRIPTS, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(IMAGES)))
def test_scripts_parse(script: Path) -> None:
    assert run("bash", "-n", script, check=False).returncode == 0


def test_stage_tree_is_what_pi_gen_runs() -> None:
    prerun = STAGE / "prerun.sh"
    assert os.access(prerun, os.X_OK)
    assert "copy_previous" in prerun.read_text()
    suffix = run(
        "bash",
        "-c",
        f'USE_QEMU=0; . {shlex.quote(str(STAGE / "EXPORT_IMAGE"))}; echo "$IMG_SUFFIX"',
    ).stdout.strip()
    assert suffix == "-lite"

    sub_stages = sorted(p for p in STAGE.iterdir() if p.is_dir())
    assert [p.name for p in sub_stages] == ["00-callbox"]
    for sub in sub_stages:
        assert re.match(r"^\d\d-[a-z0-9-]+$", sub.name)
        for path in sub.iterdir():
            if path.name == "files":
                continue
            assert PIGEN_FILE.match(path.name), f"pi-gen would ignore {path}"
            if path.name.endswith("-run.sh"):
                assert os.access(path, os.X_OK), (
                    f"pi-gen skips a -run.sh that is not executable: {path}"
                )


def packages() -> list[str]:
    text = (STAGE / "00-callbox/00-packages-nr").read_text()
    return " ".join(re.sub(r"#.*", "", text).split()).split()


def test_the_package_list_has_the_camera_display_and_venv_pieces() -> None:
    names = packages()
    assert all(DEBIAN_PACKAGE.match(n) for n in names), names
    assert len(names) == len(set(names))
    for needed in ("python3-venv", "python3-picamera2", "python3-libcamera", "python3-kms++"):
        assert needed in names
    # install.sh installs this same list (one source for the image and an existing Pi).
    assert "stage-callbox/00-callbox/00-packages-nr" in (IMAGES / "install.sh").read_text()


def test_chroot_step_runs_the_unpacked_install_sh_without_apt_or_start() -> None:
    text = (STAGE / "00-callbox/02-run-chroot.sh").read_text()
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert commands == ["/opt/callbox/src/images/install.sh --no-apt --no-start"]


# How pi-gen's build.sh names the Debian release it builds (its bookworm-arm64 branch and
# release tags say bookworm; its arm64 branch says trixie since the trixie images).
PIGEN_RELEASE_LINE = "export RELEASE=${{RELEASE:-{}}} # Don't forget to update stage0/prerun.sh\n"


def make_pi_gen(path: Path, release: str = "bookworm") -> Path:
    """Just what build.sh looks for in a pi-gen checkout."""
    (path / "stage2").mkdir(parents=True)
    (path / "stage2/prerun.sh").write_text("#!/bin/bash -e\n")
    (path / "build.sh").write_text("#!/bin/bash -e\n" + PIGEN_RELEASE_LINE.format(release))
    return path


@pytest.fixture
def fake_pi_gen(tmp_path: Path) -> Path:
    return make_pi_gen(tmp_path / "pi-gen")


def git(cwd: Path, *args: str) -> None:
    run("git", "-C", cwd, "-c", "user.name=t", "-c", "user.email=t@t", *args)


def default_pi_gen_ref() -> str:
    text = (IMAGES / "build.sh").read_text()
    found = re.search(r"^PIGEN_REF=\$\{PIGEN_REF:-([^}]+)\}$", text, re.MULTILINE)
    assert found, "build.sh sets no default PIGEN_REF"
    return found.group(1)


def test_build_clones_the_bookworm_pi_gen_by_default(tmp_path: Path) -> None:
    """A pi-gen repository laid out as upstream's: its arm64 branch builds trixie now, the
    default ref must be one that builds the release the stage is for."""
    upstream = make_pi_gen(tmp_path / "upstream", "trixie")
    git(upstream, "init", "-q", "-b", "arm64")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "trixie")
    git(upstream, "checkout", "-q", "-b", "bookworm-arm64")
    (upstream / "build.sh").write_text("#!/bin/bash -e\n" + PIGEN_RELEASE_LINE.format("bookworm"))
    git(upstream, "commit", "-q", "-am", "bookworm")
    ref = default_pi_gen_ref()
    if ref != "bookworm-arm64":
        git(upstream, "tag", ref)
    git(upstream, "checkout", "-q", "arm64")

    result = subprocess.run(
        [IMAGES / "build.sh", "--work", tmp_path / "work", "--prepare-only"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PIGEN_REPO": f"file://{upstream}"},
    )
    assert result.returncode == 0, result.stderr
    cloned = (tmp_path / "work/pi-gen/build.sh").read_text()
    assert "RELEASE:-bookworm" in cloned
    assert sourced(tmp_path / "work/pi-gen/config", "RELEASE") == {"RELEASE": "bookworm"}
    assert "bookworm" in ref and "arm64" in ref
    # The README names the ref the image is built from.
    assert f"`{ref}`" in (REPO / "README.md").read_text()


def test_build_refuses_a_pi_gen_for_another_release(tmp_path: Path) -> None:
    trixie = make_pi_gen(tmp_path / "pi-gen", "trixie")
    result = prepare(tmp_path, trixie)
    assert result.returncode == 1
    assert "builds trixie, not bookworm" in result.stderr
    assert not (trixie / "config").exists()


def prepare(tmp_path: Path, pi_gen: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMAGES / "build.sh", "--pi-gen", pi_gen, "--work", tmp_path / "work", "--prepare-only"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k not in ("FIRST_USER_PASS", "IMG_NAME")} | env,
    )


def sourced(config: Path, *names: str) -> dict[str, str]:
    script = f". {shlex.quote(str(config))}; " + "; ".join(
        f'printf "%s\\0" "${{{n}}}"' for n in names
    )
    values = run("bash", "-c", script).stdout.split("\0")[:-1]
    return dict(zip(names, values, strict=True))


def test_build_prepares_pi_gen_config_stage_and_source(tmp_path: Path, fake_pi_gen: Path) -> None:
    result = prepare(tmp_path, fake_pi_gen, ENABLE_SSH="1")
    assert result.returncode == 0, result.stderr
    assert f"to build: (cd {fake_pi_gen} && " in result.stdout

    config = sourced(
        fake_pi_gen / "config",
        "IMG_NAME", "RELEASE", "STAGE_LIST", "FIRST_USER_NAME", "FIRST_USER_PASS",
        "DISABLE_FIRST_BOOT_USER_RENAME", "ENABLE_SSH", "KEYBOARD_LAYOUT", "TARGET_HOSTNAME",
    )  # fmt: skip
    assert config["IMG_NAME"] == "callbox"
    assert config["RELEASE"] == "bookworm"
    assert config["STAGE_LIST"] == "stage0 stage1 stage2 stage-callbox"
    assert config["DISABLE_FIRST_BOOT_USER_RENAME"] == "1"
    assert config["ENABLE_SSH"] == "1"
    assert config["KEYBOARD_LAYOUT"] == "English (UK)"
    assert config["TARGET_HOSTNAME"] == "callbox"  # what firstboot.sh makes unique per kit
    assert "IMAGE_HOSTNAME=callbox " in (IMAGES / "firstboot.sh").read_text()
    # A random admin password, kept (owner-only) next to the build.
    password_file = tmp_path / "work" / "callbox-callbox-admin-password.txt"
    assert password_file.read_text().strip() == config["FIRST_USER_PASS"]
    assert len(config["FIRST_USER_PASS"]) == 24
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((fake_pi_gen / "config").stat().st_mode) == 0o600

    assert (fake_pi_gen / "stage2/SKIP_IMAGES").exists()
    stage = fake_pi_gen / "stage-callbox"
    assert os.access(stage / "00-callbox/01-run.sh", os.X_OK)
    with tarfile.open(stage / "00-callbox/files/callbox-src.tar.gz") as tar:
        names = set(tar.getnames())
        install = tar.getmember("images/install.sh")
    for needed in ("pyproject.toml", "README.md", "appliance/daemon.py", "systemd/callbox.service"):
        assert needed in names
    assert install.mode & 0o111
    assert not any("__pycache__" in n or n.startswith(".venv") for n in names)

    # pi-gen's host step for the sub-stage unpacks it where the chroot step runs it.
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(
        ["./01-run.sh"],
        cwd=stage / "00-callbox",
        env={**os.environ, "ROOTFS_DIR": str(rootfs)},
        check=True,
        timeout=60,
    )
    unpacked = rootfs / "opt/callbox/src"
    assert os.access(unpacked / "images/install.sh", os.X_OK)
    assert (unpacked / "appliance/daemon.py").read_text() == (
        REPO / "appliance/daemon.py"
    ).read_text()


def test_build_keeps_a_given_password_and_checks_its_inputs(
    tmp_path: Path, fake_pi_gen: Path
) -> None:
    result = prepare(tmp_path, fake_pi_gen, FIRST_USER_PASS="correct horse")
    assert result.returncode == 0, result.stderr
    assert sourced(fake_pi_gen / "config", "FIRST_USER_PASS") == {
        "FIRST_USER_PASS": "correct horse"
    }
    assert not list((tmp_path / "work").glob("*password*"))

    not_pi_gen = tmp_path / "elsewhere"
    not_pi_gen.mkdir()
    result = prepare(tmp_path, not_pi_gen)
    assert result.returncode == 1 and "does not look like pi-gen" in result.stderr
    result = prepare(tmp_path, fake_pi_gen, IMG_NAME="my image")
    assert result.returncode == 1 and "IMG_NAME=my image" in result.stderr
