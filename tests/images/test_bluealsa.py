"""bluez-alsa from the image: bluealsa runs with the headset profiles a kit needs. Raspberry
Pi OS Bookworm's bluez-alsa-utils 4.0.0 starts it with ``-p a2dp-source -p a2dp-sink``, so a
headset with only HFP/HSP would have no PCM at all; install.sh adds a drop-in."""

import os
import shlex
import stat
from pathlib import Path

from tests.images.rootfs import REPO, add_system_units, install, make_root, run
from tests.systemd.test_units import analyze, parse_unit

DROP_IN = "etc/systemd/system/bluealsa.service.d/callbox.conf"
# bluez-alsa 4.0.0, src/main.c, the names --profile accepts.
BLUEZ_ALSA_4_0_PROFILES = {
    "a2dp-source", "a2dp-sink", "hfp-ofono", "hfp-hf", "hfp-ag", "hsp-hs", "hsp-ag",
}  # fmt: skip
# Bookworm's /lib/systemd/system/bluealsa.service (bluez-alsa-utils 4.0.0-2), its settings
# (less Documentation=, whose man page verify would look for).
BOOKWORM_UNIT = """[Unit]
Description=BlueALSA service
Requisite=dbus.service
After=bluetooth.service

[Service]
Type=dbus
BusName=org.bluealsa
ExecStart=/usr/bin/bluealsa -p a2dp-source -p a2dp-sink
Restart=on-failure
PrivateUsers=true

[Install]
WantedBy=bluetooth.target
"""


def profiles(command: str) -> list[str]:
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words) if word in ("-p", "--profile")]


def test_the_drop_in_runs_bluealsa_as_the_audio_gateway_of_a2dp_hfp_and_hsp() -> None:
    service = parse_unit(REPO / "systemd/bluealsa-callbox.conf")["Service"]
    reset, command = service["ExecStart"]
    assert reset == ""  # a Type=dbus service takes one ExecStart: the packaged one goes
    assert command.split()[0] == "/usr/bin/bluealsa"
    names = profiles(command)
    assert set(names) <= BLUEZ_ALSA_4_0_PROFILES
    assert {"a2dp-source", "hfp-ag", "hsp-ag"} <= set(names)


def test_install_puts_the_drop_in_where_systemd_reads_it(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    install(root)
    installed = root / DROP_IN
    assert installed.read_bytes() == (REPO / "systemd/bluealsa-callbox.conf").read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644

    # systemd merges it with Bookworm's unit and accepts the result.
    add_system_units(root)
    unit = root / "usr/lib/systemd/system/bluealsa.service"
    unit.write_text(BOOKWORM_UNIT)
    binary = root / "usr/bin/bluealsa"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert os.access(binary, os.X_OK)
    result = run(analyze(), "verify", f"--root={root}", "bluealsa.service", check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    merged = run(analyze(), "cat-config", f"--root={root}", "systemd/system/bluealsa.service")
    assert "-p hfp-ag" in merged.stdout
