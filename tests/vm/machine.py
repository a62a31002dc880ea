"""The virtual kit running: QEMU under TCG with virtio devices, driven from outside.

- the screen: QEMU's HMP ``screendump`` over a unix monitor socket (what virtio-gpu scans
  out, as a person sees the HDMI screen);
- commands in the guest: the QEMU guest agent's ``guest-exec`` over a virtio-serial unix
  socket (no ssh, no network login);
- the API: QEMU's user-mode network (``restrict=on``: the guest reaches nothing outside)
  with forwards from 127.0.0.1 ports on the host to the kit's API and session server;
- the serial console: a log file with the kernel's and systemd's messages.

Every QEMU started here is killed by ``stop`` (or ``kill``, the power cut).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.vm.image import Image

GUEST_API_PORT = 8080
GUEST_SERVER_PORT = 8090
SCREEN = (640, 360)  # virtio-gpu's mode; the kit draws at this size (recipe config)
BOOT_TIMEOUT_S = 900.0  # emulated, on a busy machine: generous, never asserted on


class VmError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exec:
    exitcode: int
    out: str
    err: str


def read_ppm(path: Path) -> npt.NDArray[np.uint8]:
    """A binary PPM (P6, maxval 255) as an RGB array."""
    data = path.read_bytes()
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise VmError(f"{path}: not an 8-bit binary PPM")
    width, height = int(fields[1]), int(fields[2])
    pixels = np.frombuffer(data[pos + 1 : pos + 1 + width * height * 3], np.uint8)
    return pixels.reshape(height, width, 3)


class VirtualKit:
    """One QEMU; ``start`` boots it, ``stop`` powers it off (and waits), ``kill`` cuts power."""

    def __init__(self, image: Image, workdir: Path, *, memory_mb: int = 2048) -> None:
        self.image = image
        self.workdir = workdir
        self.memory_mb = memory_mb
        self.overlay = workdir / "disk.qcow2"
        self.serial_log = workdir / "serial.log"
        self.monitor_path = workdir / "monitor.sock"
        self.agent_path = workdir / "agent.sock"
        self.api_port = 0
        self.server_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._agent: socket.socket | None = None
        self._agent_buffer = b""
        self._token: str | None = None
        self._scheme = "http"

    # --- power ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None:
            raise VmError("already running")
        if not self.overlay.exists():  # a fresh disk: writes go here, the image stays clean
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                 str(self.image.disk), str(self.overlay)],
                check=True,
            )
        for path in (self.monitor_path, self.agent_path):
            path.unlink(missing_ok=True)
        self.api_port, self.server_port = free_port(), free_port()
        forwards = (
            f"hostfwd=tcp:127.0.0.1:{self.api_port}-:{GUEST_API_PORT},"
            f"hostfwd=tcp:127.0.0.1:{self.server_port}-:{GUEST_SERVER_PORT}"
        )
        args = [
            "qemu-system-x86_64",
            "-accel", "tcg",
            # The x86-64 levels wheels need (qemu64 lacks SSE4, AVX), but not QEMU 7.2's
            # first FMA and AVX2 emulation: numpy's tanh there gave tanh(3) = -1058, which
            # drove the mixer's limiter to a negative gain and the speaker silent.
            "-cpu", "max,fma=off,avx2=off",
            "-smp", "2",
            "-m", str(self.memory_mb),
            "-nodefaults", "-no-user-config", "-no-reboot",
            "-display", "none",
            "-kernel", str(self.image.kernel),
            "-initrd", str(self.image.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0",
            "-drive", f"file={self.overlay},if=virtio,format=qcow2",
            "-device", f"virtio-gpu-pci,xres={SCREEN[0]},yres={SCREEN[1]}",
            "-device", "virtio-rng-pci",
            "-netdev", f"user,id=net0,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=net0",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=agent,name=org.qemu.guest_agent.0",
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
            "-serial", f"file:{self.serial_log}",
        ]
        with (self.workdir / "qemu.log").open("ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def kill(self) -> None:
        """Power cut: QEMU dies at once, the guest gets no chance to write anything."""
        self._close_agent()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """A clean power-off when the guest answers, else a kill."""
        if self.process is None:
            return
        with contextlib.suppress(Exception):
            self.agent("guest-shutdown", {"mode": "powerdown"}, timeout=10, reply=False)
            self.process.wait(timeout=60)
        self.kill()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _check_running(self) -> None:
        if not self.running:
            raise VmError(f"QEMU is not running; serial console:\n{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.serial_log.read_text(errors="replace")
        except OSError:
            return "(no serial log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- the guest agent ------------------------------------------------------------------

    def _close_agent(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None
            self._agent_buffer = b""

    def _connect_agent(self, timeout: float) -> socket.socket:
        if self._agent is not None:
            return self._agent
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(str(self.agent_path))
        self._agent = sock
        # Resynchronise: anything a previous client left unread is skipped up to our id.
        ident = int.from_bytes(os.urandom(4), "big") >> 1
        sock.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                           "arguments": {"id": ident}}).encode())
        while True:
            line = self._read_line(timeout)
            with contextlib.suppress(ValueError):
                if json.loads(line.lstrip(b"\xff")).get("return") == ident:
                    return sock

    def _read_line(self, timeout: float) -> bytes:
        assert self._agent is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._agent_buffer:
            self._agent.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = self._agent.recv(65536)
            if not chunk:
                raise VmError("the guest agent closed the connection")
            self._agent_buffer += chunk
        line, _, self._agent_buffer = self._agent_buffer.partition(b"\n")
        return line

    def agent(self, command: str, arguments: dict[str, Any] | None = None, *,
              timeout: float = 30, reply: bool = True) -> Any:
        self._check_running()
        try:
            sock = self._connect_agent(timeout)
            message: dict[str, Any] = {"execute": command}
            if arguments is not None:
                message["arguments"] = arguments
            sock.sendall(json.dumps(message).encode() + b"\n")
            if not reply:
                return None
            answer = json.loads(self._read_line(timeout))
        except (OSError, ValueError):
            self._close_agent()
            raise
        if "error" in answer:
            raise VmError(f"guest agent {command}: {answer['error']}")
        return answer.get("return")

    def wait_for_agent(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            try:
                self.agent("guest-ping", timeout=5)
                return
            except (OSError, VmError, ValueError):
                self._close_agent()
                if time.monotonic() > deadline:
                    raise VmError(f"no guest agent after {timeout:.0f} s; serial console:\n"
                                  f"{self.console_tail()}") from None
                time.sleep(2)

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 120,
            check: bool = True) -> Exec:
        """``command`` through /bin/sh in the guest, as root; its exit code and output."""
        arguments: dict[str, Any] = {"path": "/bin/sh", "arg": ["-c", command],
                                     "capture-output": True}
        if stdin:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        pid = self.agent("guest-exec", arguments)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.agent("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise VmError(f"guest command did not finish in {timeout:.0f} s: {command}")
            time.sleep(0.3)
        result = Exec(
            exitcode=int(status.get("exitcode", -1)),
            out=base64.b64decode(status.get("out-data", "")).decode(errors="replace"),
            err=base64.b64decode(status.get("err-data", "")).decode(errors="replace"),
        )
        if check and result.exitcode != 0:
            raise VmError(f"guest command failed ({result.exitcode}): {command}\n"
                          f"{result.out}{result.err}")
        return result

    def journal(self, unit: str = "callbox.service", lines: int = 60) -> str:
        return self.run(f"journalctl -b -u {unit} --no-pager -n {lines}", check=False).out

    # --- the monitor ----------------------------------------------------------------------

    def monitor(self, command: str, timeout: float = 60) -> str:
        """One HMP command; its output."""
        self._check_running()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.monitor_path))
            buffer = b""
            while not buffer.endswith(b"(qemu) "):
                buffer += sock.recv(4096)
            sock.sendall(command.encode() + b"\n")
            buffer = b""
            while not buffer.endswith(b"(qemu) "):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
        return buffer.decode(errors="replace")

    def screendump(self) -> npt.NDArray[np.uint8]:
        """What the virtual HDMI screen shows now, as RGB."""
        path = self.workdir / "screen.ppm"
        path.unlink(missing_ok=True)
        output = self.monitor(f"screendump {path}")
        if not path.exists():
            raise VmError(f"screendump wrote nothing: {output}")
        return read_ppm(path)

    # --- the kit --------------------------------------------------------------------------

    def kit_config(self) -> dict[str, Any]:
        """The config the guest actually has (first boot writes it)."""
        return tomllib.loads(self.run("cat /etc/callbox/callbox.toml").out)

    def wait_for_unit(self, unit: str = "callbox.service", timeout: float = BOOT_TIMEOUT_S,
                      *, after: float | None = None) -> None:
        """Until ``unit`` is active (its READY=1 came, for a notify unit)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(f"systemctl is-active {unit}", check=False).out.strip()
            if state == "active":
                return
            if state == "failed" or time.monotonic() > deadline:
                raise VmError(f"{unit} is {state}; its journal:\n{self.journal(unit)}")
            time.sleep(3)

    def _read_api_settings(self) -> None:
        config = self.kit_config()
        api = config.get("api", {})
        self._token = api.get("token")
        self._scheme = "https" if api.get("tls", {}).get("enabled") else "http"

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 60,
            auth: bool = True) -> tuple[int, bytes, str]:
        """One REST call through the port forward: (status, body, content type)."""
        if self._token is None:
            self._read_api_settings()
        url = f"{self._scheme}://127.0.0.1:{self.api_port}{path}"
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        context = None
        if self._scheme == "https":  # the kit's own certificate: trusted on first use
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
                return answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers.get("Content-Type", "")

    def api_json(self, method: str, path: str, body: Any = None) -> Any:
        status, data, _ = self.api(method, path, body)
        if status >= 300:
            raise VmError(f"{method} {path}: {status} {data[:500]!r}")
        return json.loads(data)


@contextlib.contextmanager
def booted(image: Image, workdir: Path) -> Iterator[VirtualKit]:
    kit = VirtualKit(image, workdir)
    kit.start()
    try:
        kit.wait_for_agent()
        kit.wait_for_unit()
        yield kit
    finally:
        kit.stop()
