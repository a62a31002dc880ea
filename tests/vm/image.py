"""The virtual kit's disk image: Debian 12 made with mmdebstrap, the kit installed with the
real images/install.sh in a chroot, cached outside the repository by a hash of its recipe.

Two layers, so that changing callbox's code does not rebuild Debian:

- the base (``base-<hash>/``): Debian's packages, kms++ and gpio-sim built for the guest's
  kernel, gpiozero and lgpio, images/install.sh run with apt and the venv, the virtual
  devices' settings (tests/vm/recipe/). Its hash covers the recipe, install.sh, first boot,
  the package list, the units and pyproject.toml. About 10 minutes to build.
- the kit (``kit-<hash>.img``): a copy of the base with the current source installed by
  install.sh again (--no-apt), as an ext4 image. Its hash adds the source. About a minute.

Building needs root (mmdebstrap's root mode, chroot, mount namespaces), as CI and the
developers' machines run the tests.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dbusmock

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path(__file__).resolve().parent / "recipe"
KMSXX = REPO.parent / "shared" / "vendor" / "kmsxx-9ae90ce.tar.gz"
CACHE = Path(os.environ.get("CALLBOX_VM_CACHE", Path.home() / ".cache" / "callbox" / "vm"))
IMAGE_SIZE = "6G"  # sparse
HOST_CAS = Path("/usr/local/share/ca-certificates")

# What each layer's hash covers (files, or directories taken whole).
BASE_INPUTS = [
    RECIPE,
    REPO / "images" / "install.sh",
    REPO / "images" / "firstboot.sh",
    REPO / "images" / "stage-callbox" / "00-callbox" / "00-packages-nr",
    REPO / "systemd",
    REPO / "pyproject.toml",
    Path(__file__).resolve(),
]
SOURCE = ["pyproject.toml", "README.md", "appliance", "hal", "systemd", "images"]


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    disk: Path  # raw ext4, the root file system; never written (boots use an overlay)
    kernel: Path
    initrd: Path


def _files(inputs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
            )
        elif path.exists():
            found.append(path)
    return found


def digest(inputs: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in _files(inputs):
        # Named within the repository, so a clone elsewhere finds the same cached image.
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else Path(path.name)
        h.update(str(name).encode() + b"\0")
        h.update(f"{path.stat().st_mode & 0o111}".encode())
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _log(message: str) -> None:
    print(f"vm image: {message}", file=sys.stderr, flush=True)


def _run(args: list[str], log: Path, **kwargs: object) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise BuildError(f"{args[0]} failed ({done.returncode}); end of {log}:\n{tail}")


def _source_tree(dest: Path) -> None:
    """The callbox source as install.sh copies it (without caches and build leftovers)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(src, dest / name)


def dbusmock_tarball() -> bytes:
    """python-dbusmock as this machine has it (the guest's mock BlueZ; Debian 12's is older)."""
    package = Path(dbusmock.__file__).parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(
            package, arcname="dbusmock", filter=lambda t: None if "__pycache__" in t.name else t
        )
    return buffer.getvalue()


def packages() -> str:
    words: list[str] = []
    for line in (RECIPE / "packages").read_text().splitlines():
        words.extend(line.split("#", 1)[0].split())
    return ",".join(words)


def build_base(key: str) -> Path:
    """Debian, the built extras and the kit installed with apt: ``base-<key>/``."""
    final = CACHE / f"base-{key}"
    if (final / "done").exists():
        return final
    if not KMSXX.exists():
        raise BuildError(f"{KMSXX} is missing (the shared vendor directory beside the repo)")
    CACHE.mkdir(parents=True, exist_ok=True)
    for failed in CACHE.glob("base-*.*"):  # builds that broke off: their logs were shown
        shutil.rmtree(failed, ignore_errors=True)
    HOST_CAS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"base-{key}.", dir=CACHE))
    log = work / "build.log"
    started = time.monotonic()
    _log(f"building the base image (log: {log}); about 10 minutes")
    try:
        stage = work / "stage"
        _source_tree(stage / "src")
        shutil.copytree(RECIPE, stage / "vm")
        shutil.copy2(KMSXX, stage / "vm" / "kmsxx.tar.gz")
        (stage / "vm" / "dbusmock.tar.gz").write_bytes(dbusmock_tarball())
        rootfs = work / "rootfs"
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                f"--include={packages()}",
                "--aptopt=APT::Install-Recommends false",
                '--customize-hook=mkdir -p "$1/tmp/vm" "$1/opt/callbox/src"',
                # The build machine's own certificate authorities (a proxy's), so pip in
                # the chroot reaches PyPI as the machine does.
                f"--customize-hook=sync-in {HOST_CAS} /usr/local/share/ca-certificates",
                f"--customize-hook=sync-in {stage / 'vm'} /tmp/vm",
                f"--customize-hook=sync-in {stage / 'src'} /opt/callbox/src",
                '--customize-hook=chroot "$1" /bin/bash /tmp/vm/base.sh',
                '--customize-hook=rm -rf "$1/tmp/vm"',
                "bookworm",
                str(rootfs),
            ],
            log,
            stdin=subprocess.DEVNULL,
        )
        shutil.rmtree(stage)
        boot = sorted((rootfs / "boot").glob("vmlinuz-*"))
        initrd = sorted((rootfs / "boot").glob("initrd.img-*"))
        if not boot or not initrd:
            raise BuildError(f"no kernel or initrd in {rootfs}/boot")
        shutil.copy2(boot[-1], work / "vmlinuz")
        shutil.copy2(initrd[-1], work / "initrd.img")
        (work / "seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        (work / "done").touch()
        for old in CACHE.glob("base-*"):
            if old.is_dir() and old != work and (old / "done").exists():
                shutil.rmtree(old, ignore_errors=True)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work / "stage", ignore_errors=True)  # rootfs kept to look into
        raise
    _log(f"base image built in {time.monotonic() - started:.0f} s")
    return final


def build_kit(base: Path, key: str) -> Path:
    """The base with the current source installed by install.sh: ``kit-<key>.img``."""
    image = CACHE / f"kit-{key}.img"
    if image.exists():
        return image
    work = Path(tempfile.mkdtemp(prefix=f"kit-{key}.", dir=CACHE))
    log = work / "build.log"
    started = time.monotonic()
    _log(f"installing the current source into a copy of the base (log: {log})")
    try:
        rootfs = work / "rootfs"
        _run(["cp", "-a", str(base / "rootfs"), str(rootfs)], log)
        shutil.rmtree(rootfs / "opt" / "callbox" / "src")
        _source_tree(rootfs / "opt" / "callbox" / "src")
        # install.sh inside the root, as the image build does: the chroot gets /proc,
        # /sys and /dev in a mount namespace of its own, gone when it ends.
        script = (
            f"set -e; r={rootfs}; mount -t proc proc $r/proc; mount --rbind /sys $r/sys; "
            "mount --rbind /dev $r/dev; "
            "chroot $r /opt/callbox/src/images/install.sh --no-apt --no-start"
        )
        _run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script], log)
        partial = work / "disk.img"
        _run(
            ["mkfs.ext4", "-q", "-F", "-L", "callbox", "-d", str(rootfs), str(partial), IMAGE_SIZE],
            log,
        )
        for old in CACHE.glob("kit-*.img"):
            old.unlink(missing_ok=True)
        partial.rename(image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _log(f"kit image made in {time.monotonic() - started:.0f} s")
    return image


def ensure() -> Image:
    """The current recipe's image, built if the cache lacks it."""
    if os.geteuid() != 0:
        raise BuildError("building the virtual kit's image needs root (mmdebstrap, chroot)")
    for tool in ("mmdebstrap", "mkfs.ext4", "unshare", "qemu-system-x86_64", "qemu-img"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} is missing: `make setup-test` installs the lane's packages")
    base_key = digest(BASE_INPUTS, extra=f"dbusmock {dbusmock.__version__}")
    base = build_base(base_key)
    kit_key = digest([REPO / name for name in SOURCE], extra=base_key)
    disk = build_kit(base, kit_key)
    return Image(disk=disk, kernel=base / "vmlinuz", initrd=base / "initrd.img")


if __name__ == "__main__":
    image = ensure()
    print(image.disk)
