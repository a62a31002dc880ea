"""schemathesis against a live ``callbox run``: every operation of /api/v1/openapi.json
with generated inputs, authorised; no 5xx, and every reply as the document says."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.daemon import TOKEN, strict_loads

pytestmark = pytest.mark.slow

CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("live")
    port = _free_port()
    config = tmp / "callbox.toml"
    config.write_text(
        f"""
[kit]
uid = "room-a"
name = "Room A"
[server]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"
[hal]
backend = "fake"
[hal.camera]
width = 320
height = 240
fps = 10
[paths]
state = "{tmp / "state"}"
"""
    )
    log = (tmp / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp / "daemon.log").read_text()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(base + "/api/v1/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.2)
        yield base
        assert process.poll() is None, "the daemon died:\n" + (tmp / "daemon.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_api_matches_its_document(live_daemon: str, tmp_path: Path) -> None:
    """schemathesis's own command line: every operation, positive and negative inputs."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        live_daemon + "/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "30",
        "--request-timeout",
        "30",
        "--seed",
        "1",
        "--no-color",
        # Rotating the token would lock out every later request; it has its own tests.
        "--exclude-path",
        "/api/v1/token/rotate",
        # An endless stream unless ?frames= is given; it has its own test.
        "--exclude-path",
        "/api/v1/display.mjpeg",
        "--report-dir",
        str(tmp_path),
        "--report",
        "har",
        "--report-har-path",
        str(tmp_path / "run.har"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout
    # Every JSON reply of the run is strict JSON, as a browser reads it (no NaN, Infinity).
    entries = json.loads((tmp_path / "run.har").read_text())["log"]["entries"]
    json_replies = 0
    for entry in entries:
        content = entry["response"]["content"]
        if not content.get("mimeType", "").startswith("application/json"):
            continue
        text = content.get("text", "")
        if content.get("encoding") == "base64":
            text = base64.b64decode(text).decode()
        strict_loads(text)
        json_replies += 1
    assert json_replies > 100, f"{json_replies} JSON replies in the run's record"
