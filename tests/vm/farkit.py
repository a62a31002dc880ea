"""A far kit inside the guest: a second ``callbox run`` on fake hardware (its microphone a
tone, its camera a numbered pattern), on the virtual kit's embedded session server over
the guest's loopback. Calls between the two stay inside the VM: no other network."""

from __future__ import annotations

import base64
import io
import json
import secrets
import shlex
import wave
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.tls import fingerprint_of
from tests.vm.machine import VirtualKit, VmError

UID = "room-b"
TONE_HZ = 650.0
API = "127.0.0.1:8081"
STATE = "/var/lib/callbox-far"
UNIT = "callbox-far"
CAMERA = (160, 120)  # small and slow: the emulated CPU sends it


def start(vm: VirtualKit) -> str:
    """Creates the far kit's user and starts it (a transient unit); its API token."""
    if vm.run(f"systemctl is-active {UNIT}", check=False).out.strip() == "active":
        return vm.run(f"cat {STATE}/api-token").out.strip()
    auth = vm.run(
        f"/opt/callbox/venv/bin/callbox users add {UID} --name 'Room B' "
        "--config /etc/callbox/callbox.toml"
    ).out.split()[-1]
    token = secrets.token_hex(32)
    # The kit's own session server, as first boot set it up (https with its self-signed
    # certificate, which the far kit pins, as a kit of a LAN server does).
    kit = vm.kit_config()
    url = kit["server"]["url"].replace("0.0.0.0", "127.0.0.1")
    pin = ""
    if url.startswith("https://"):
        state = kit.get("paths", {}).get("state", "/var/lib/callbox")
        cert = vm.run(f"cat {state}/tls/cert.pem").out.encode()
        pin = f'fingerprint = "{fingerprint_of(cert)}"'
    config = f"""
[kit]
uid = "{UID}"
name = "Room B"

[server]
embedded = false
url = "{url}"
auth_token = "{auth}"
{pin}

[api]
listen = "{API}"
token = "{token}"

[paths]
state = "{STATE}"

[hal]
backend = "fake"

[hal.audio]
fake_tone_hz = {TONE_HZ}

# A fake microphone has nothing to clean up, and the emulated CPU's time is the kit's.
[audio]
echo_cancellation = false
noise_suppression = false
gain_control = false

[hal.camera]
width = {CAMERA[0]}
height = {CAMERA[1]}
fps = 5

[hal.display]
backend = "disabled"
"""
    vm.run(f"mkdir -p {STATE} && cat > {STATE}/far.toml && echo {token} > {STATE}/api-token",
           stdin=config.encode())
    vm.run(f"systemd-run --unit {UNIT} --property Type=notify --property NotifyAccess=main "
           f"/opt/callbox/venv/bin/callbox run --config {STATE}/far.toml")
    return token


def api(vm: VirtualKit, token: str, method: str, path: str, body: Any = None) -> Any:
    """One call to the far kit's REST API, made inside the guest."""
    script = (
        "import json, sys, urllib.request\n"
        f"r = urllib.request.Request('http://{API}{path}', method='{method}', "
        f"headers={{'Authorization': 'Bearer {token}', 'Content-Type': 'application/json'}}, "
        "data=sys.stdin.buffer.read() or None)\n"
        "print(urllib.request.urlopen(r, timeout=60).read().decode())\n"
    )
    data = json.dumps(body).encode() if body is not None else b""
    result = vm.run(f"python3 -c {shlex.quote(script)}", stdin=data, check=False)
    if result.exitcode != 0:
        raise VmError(f"far kit {method} {path}: {result.err[-1500:]}")
    return json.loads(result.out) if result.out.strip() else None


def record(vm: VirtualKit, device: str, seconds: int = 2) -> npt.NDArray[np.int16]:
    """What the loopback's other side hears: mono 48 kHz samples."""
    out = vm.run(
        f"arecord -q -D {device} -f S16_LE -r 48000 -c 1 -d {seconds} -t wav - | base64 -w0",
        timeout=60 + seconds,
    ).out
    with wave.open(io.BytesIO(base64.b64decode(out))) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
