"""callbox in a venv as a kit has it: Debian's own Python 3.11 with apt's numpy 1.24 and
scipy (standing in for picamera2's simplejpeg: a C extension built against apt's numpy)
through --system-site-packages, the project installed by install.sh's own venv step.

If pip put another numpy in the venv, apt's C extensions would fail to import
(``numpy.dtype size changed``) and the camera with them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.images.rootfs import INSTALL, REPO

SYSTEM_PYTHON = Path("/usr/bin/python3")
APT_SITE = "/usr/lib/python3/dist-packages"

# Run inside the venv: what a kit imports at start, apt's C extension beside it, and
# numpy-heavy work of the project's own (room audio through both engines) on that numpy.
CHECK = """
import json, importlib
import numpy as np
import scipy.ndimage
from appliance.audio.engines import SpeexEngine, WebRtcEngine
from appliance.audio.settings import RoomAudioConfig
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE
import appliance.daemon, hal.camera.real, hal.display.real, hal.audio.real

t = np.arange(FRAME_SAMPLES * 50) / SAMPLE_RATE
tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
frames = tone.reshape(-1, FRAME_SAMPLES)
out = {}
for name, make in (
    ("webrtc", lambda: WebRtcEngine(importlib.import_module("pywebrtc_audio"), RoomAudioConfig())),
    ("speexdsp", lambda: SpeexEngine(importlib.import_module("speexdsp"))),
):
    engine = make()
    results = [engine.process(f.copy(), f.copy()).pcm for f in frames]
    out[name] = [int(r.shape[0]) for r in results[:1]] + [str(results[0].dtype)]
out["numpy"] = [np.__version__, np.__file__]
out["filtered"] = float(scipy.ndimage.uniform_filter(tone.astype(float), 5)[100])
print(json.dumps(out))
"""


def apt_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.startswith("install ok installed"), (
        f"{package} is missing: `make test` installs it (APT_TEST in the Makefile)"
    )
    return result.stdout.split()[-1]


def copy_source(dest: Path) -> None:
    """What install.sh's install_source copies to /opt/callbox/src."""
    dest.mkdir(parents=True)
    archive = dest.parent / "src.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("pyproject.toml", "README.md", "appliance", "hal", "systemd", "images"):
            tar.add(
                REPO / name,
                arcname=name,
                filter=lambda info: (
                    None if "__pycache__" in info.name or info.name.endswith(".egg-info") else info
                ),
            )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_bookworm_venv_keeps_apt_numpy_and_runs_callbox(tmp_path: Path) -> None:
    for package in ("python3-numpy", "python3-scipy", "python3-venv"):
        apt_version(package)
    assert SYSTEM_PYTHON.exists()
    system_numpy = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import numpy; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert system_numpy.startswith("1.24."), system_numpy  # Bookworm's

    prefix = tmp_path / "opt/callbox"
    copy_source(prefix / "src")
    # install.sh's own venv step, run as install.sh runs it on a kit: Debian's python3
    # first on the PATH, pip's cache shared with the rest of the tests.
    step = f"""
        set -euo pipefail
        say() {{ echo "install.sh: $*"; }}
        source <(sed -n '/^install_venv() {{$/,/^}}$/p' {INSTALL})
        declare -F install_venv >/dev/null
        PREFIX={prefix} VENV={prefix}/venv
        install_venv
    """
    env = {
        "PATH": f"{SYSTEM_PYTHON.parent}:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    } | {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "XDG_"))}
    installed = subprocess.run(
        ["bash", "-c", step], capture_output=True, text=True, env=env, timeout=840, check=False
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    venv_python = prefix / "venv/bin/python"
    assert shutil.which("python", path=str(venv_python.parent))

    result = subprocess.run(
        [venv_python, "-c", CHECK],
        capture_output=True,
        text=True,
        env={"PATH": env["PATH"], "HOME": env["HOME"]},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    version, location = out["numpy"]
    assert version == system_numpy
    assert location.startswith(APT_SITE), location
    assert out["webrtc"][-1] == out["speexdsp"][-1] == "int16"
    assert out["filtered"] != 0
    # Nothing in the venv shadows apt's numpy.
    assert not list((prefix / "venv").rglob("numpy/__init__.py"))
