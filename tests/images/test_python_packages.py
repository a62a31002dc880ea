"""Every Python dependency installs on a kit (aarch64, CPython 3.11, Bookworm): from a wheel,
from apt, or built from source with Debian packages the stage installs
(images/python-packages.toml says which)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.images.rootfs import IMAGES, REPO
from tests.images.test_stage import packages

TABLE = IMAGES / "python-packages.toml"
# Bookworm's glibc is 2.36: every manylinux wheel up to it installs there.
AARCH64 = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]
BOOKWORM_NUMPY = "1.24.2"


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = {}
    for text in project["dependencies"] + project["optional-dependencies"]["hardware"]:
        requirement = Requirement(text)
        found[canonicalize_name(requirement.name)] = requirement
    return found


def table() -> dict[str, object]:
    return tomllib.loads(TABLE.read_text())


def test_every_dependency_says_how_it_installs_on_a_kit() -> None:
    kinds = table()
    named = [canonicalize_name(n) for n in kinds["wheel"]["packages"]]  # type: ignore[index]
    named += [canonicalize_name(n) for n in kinds["apt"]]  # type: ignore[union-attr]
    named += [canonicalize_name(n) for n in kinds["source"]]  # type: ignore[union-attr]
    assert len(named) == len(set(named)), "a package is listed twice"
    assert sorted(named) == sorted(requirements())


def test_the_stage_installs_what_source_builds_and_apt_packages_need() -> None:
    listed = set(packages())
    kinds = table()
    for name, needs in kinds["source"].items():  # type: ignore[union-attr]
        missing = sorted(set(needs) - listed)
        assert not missing, f"{name} builds from source with {missing}: add to 00-packages-nr"
    for name, package in kinds["apt"].items():  # type: ignore[union-attr]
        assert package in listed, f"{name} comes from {package}: add to 00-packages-nr"
    # speexdsp's build: swig generates the wrapper, against libspeexdsp's headers.
    assert {"swig", "libspeexdsp-dev"} <= listed


@pytest.mark.slow
def test_the_wheels_resolve_for_aarch64_with_bookworms_numpy(tmp_path: Path) -> None:
    """pip resolves the wheel-only dependencies for a Pi, binary only, with numpy held at
    apt's version (as install.sh's constraint does)."""
    wanted = {canonicalize_name(n) for n in table()["wheel"]["packages"]}  # type: ignore[index]
    specs = [str(r) for name, r in requirements().items() if name in wanted]
    platforms = [arg for tag in AARCH64 for arg in ("--platform", tag)]
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation",
         "cp", "--target", str(tmp_path / "target"), "--report", str(report),
         f"numpy=={BOOKWORM_NUMPY}", *specs],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved["numpy"] == BOOKWORM_NUMPY
    assert wanted <= set(resolved)
