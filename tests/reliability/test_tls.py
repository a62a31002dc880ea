"""Signaling and REST over TLS: a self-signed certificate made on first start (and kept),
its fingerprint on the screen, kits that verify the server against a pin or a CA file,
and clients that do not trust it refused."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.calls import CallSettingsBuilder
from appliance.config import ConfigError, validate
from appliance.daemon import Daemon
from appliance.display import sprites
from appliance.display.layout import SpriteItem
from appliance.server import SessionServer
from appliance.signaling.client import ServerApi, SignalingClient
from appliance.tls import (
    CERT_FILE,
    KEY_FILE,
    TLS_DIR,
    client_trust,
    fingerprint_of,
    parse_fingerprint,
    self_signed_certificate,
    server_tls,
)
from hal.audio.base import Route
from hal.audio.pcm import dominant_frequency, rms_dbfs
from tests.api.daemon import TOKEN, running_daemon
from tests.kits import free_port, running_server

REPO = Path(__file__).resolve().parents[2]
WRONG_PIN = ":".join(["AB"] * 32)


def served_certificate(url: str, context: ssl.SSLContext) -> bytes:
    """The DER certificate the server at ``url`` presents, checked with ``context``
    (blocking: from a thread when the server runs on this loop)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with (
        socket.create_connection((host, int(port.split("/")[0])), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def sha256(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_a_self_signed_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    first = server_tls(None, None, tmp_path, ["192.168.1.20"])
    cert, key = tmp_path / TLS_DIR / CERT_FILE, tmp_path / TLS_DIR / KEY_FILE
    assert first.self_signed and first.cert_path == cert
    assert key.stat().st_mode & 0o777 == 0o600
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", socket.gethostname(), f"{socket.gethostname()}.local"} <= set(
        names.get_values_for_type(x509.DNSName)
    )
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "192.168.1.20")} <= set(
        names.get_values_for_type(x509.IPAddress)
    )
    assert first.fingerprint == sha256(loaded.public_bytes(serialization.Encoding.DER))
    again = server_tls(None, None, tmp_path)  # the next start: the same certificate
    assert again.fingerprint == first.fingerprint
    assert parse_fingerprint(first.fingerprint.replace(":", "").lower()) == parse_fingerprint(
        first.fingerprint
    )


def test_a_fingerprint_is_the_first_certificates_der_and_garbage_is_refused(
    tmp_path: Path,
) -> None:
    first, _ = self_signed_certificate(tmp_path / "a", [])
    second, _ = self_signed_certificate(tmp_path / "b", [])
    pem = first.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert fingerprint_of(pem) == sha256(der)
    assert fingerprint_of(pem + second.read_bytes()) == sha256(der)  # a chain: its first
    assert fingerprint_of(b"junk before\n" + pem.replace(b"\n", b"\r\n")) == sha256(der)
    for bad in (b"", b"not a certificate", pem.replace(b"MI", b"M!", 1)):
        with pytest.raises(ValueError, match=r"PEM certificate|base64"):
            fingerprint_of(bad)


def test_tls_settings_that_make_no_sense_are_refused() -> None:
    for bad, field in (
        ({"server": {"tls": {"enabled": True, "cert": "/x.pem"}}}, "server.tls"),
        ({"api": {"tls": {"key": "/k.pem"}}}, "api.tls"),
        ({"server": {"ca_file": "/ca.pem", "fingerprint": WRONG_PIN}}, "server"),
        ({"server": {"fingerprint": "AB:CD"}}, "server.fingerprint"),
    ):
        with pytest.raises(ConfigError) as refused:
            validate(bad)
        assert refused.value.field == field, bad


async def test_signaling_and_rest_over_tls_with_the_fingerprint_on_the_screen(
    tmp_path: Path,
) -> None:
    tls = {"tls": {"enabled": True}}
    async with running_daemon(tmp_path, server=tls, api=tls) as kit:
        assert kit.api is not None and kit.server is not None and kit.calls is not None
        assert kit.api.url.startswith("https://") and kit.server.url.startswith("https://")
        assert kit.calls.connected  # the kit reached its own server over wss, pinned
        cert_file = tmp_path / "room-a" / TLS_DIR / CERT_FILE
        trusted = ssl.create_default_context(cafile=cert_file)
        served = await asyncio.to_thread(served_certificate, kit.api.url, trusted)
        assert kit.tls_fingerprint == sha256(served) == fingerprint_of(cert_file.read_bytes())
        # One certificate for both.
        assert await asyncio.to_thread(served_certificate, kit.server.url, trusted) == served

        # The home screen shows it.
        assert kit.compositor is not None
        async with asyncio.timeout(10):
            while not _screen_shows(kit, f"TLS SHA-256 {kit.tls_fingerprint}"):
                await asyncio.sleep(0.05)

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            # Trusted (CA file, or the pin shown on the screen): served.
            for trust in (
                client_trust(str(cert_file), None),
                client_trust(None, kit.tls_fingerprint),
            ):
                async with http.get(
                    kit.api.url + "/api/v1/session", headers=headers, ssl=trust
                ) as response:
                    assert response.status == 200
            ws = await http.ws_connect(
                kit.api.url.replace("https", "wss", 1) + "/api/v1/events",
                protocols=("callbox", f"bearer.{TOKEN}"),
                ssl=client_trust(None, kit.tls_fingerprint),
            )
            await ws.close()
            # Not trusted: refused before any request is sent.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(kit.api.url + "/api/v1/health")
            with pytest.raises(aiohttp.ServerFingerprintMismatch):
                await http.get(kit.api.url + "/api/v1/health", ssl=client_trust(None, WRONG_PIN))
            # Plain HTTP on the TLS port gets nothing.
            plain = kit.api.url.replace("https://", "http://", 1) + "/api/v1/health"
            with pytest.raises(aiohttp.ClientError):
                await http.get(plain)

        # The session server's HTTP and WebSocket sides, from a kit that pins it or not.
        assert kit.tls_fingerprint is not None
        pinned_api = ServerApi(kit.server.url, trust=client_trust(None, kit.tls_fingerprint))
        unpinned = ServerApi(kit.server.url)
        wrong = SignalingClient(kit.server.url, "x" * 20, trust=client_trust(None, WRONG_PIN))
        try:
            assert await pinned_api.users(kit.calls._auth_token)
            with pytest.raises(ConnectionError):
                await unpinned.users(kit.calls._auth_token)
            with pytest.raises(aiohttp.ServerFingerprintMismatch):
                await wrong.connect(timeout=10)
        finally:
            await pinned_api.close()
            await unpinned.close()
            await wrong.close()


def _screen_shows(kit: Daemon, text: str) -> bool:
    assert kit.compositor is not None
    return any(
        isinstance(item, SpriteItem)
        and isinstance(item.spec, sprites.Text)
        and item.spec.text == text
        for item in kit.compositor.shown_layout.items
    )


async def test_a_call_between_kits_over_wss_with_a_pinned_server(tmp_path: Path) -> None:
    tls = {"tls": {"enabled": True}}
    async with running_daemon(tmp_path, server=tls, api=tls) as a:
        assert a.server is not None and a.calls is not None
        token_b = await a.server.create_user("room-b", "Room B")
        remote = {
            "embedded": False,
            "url": a.server.url,
            "auth_token": token_b,
            "fingerprint": a.tls_fingerprint,
        }
        async with running_daemon(tmp_path, "room-b", server=remote) as b:
            assert b.calls is not None and b.calls.connected
            await a.calls.start_session(*await _session(a, "over-tls"))
            await b.calls.start_session(*await _session(b, "over-tls"))
            async with asyncio.timeout(15):
                while not (_with(a, "room-b") and _with(b, "room-a")):
                    await asyncio.sleep(0.05)
                while not _hears(a, _tone(b)):
                    await asyncio.sleep(0.05)
            await b.calls.end_session()


async def _session(kit: Daemon, session_id: str) -> tuple[Any, Any]:
    assert kit.calls is not None and kit.kit is not None
    token = await kit.calls.generate_token(session_id, kit.calls._auth_token)
    return token, CallSettingsBuilder(None, token).build()


def _with(kit: Daemon, uid: str) -> bool:
    assert kit.calls is not None
    return kit.calls.session is not None and uid in kit.calls.session.participants


def _tone(kit: Daemon) -> float:
    assert kit.hardware is not None and kit.hardware.microphone is not None
    tone: float = kit.hardware.microphone.tone_hz  # type: ignore[attr-defined]
    return tone


def _hears(kit: Daemon, hz: float) -> bool:
    assert kit.hardware is not None
    pcm = kit.hardware.outputs[Route.SPEAKER].recent(0.2)  # type: ignore[attr-defined]
    return len(pcm) > 0 and rms_dbfs(pcm) > -40 and abs(dominant_frequency(pcm) - hz) < 15


# --- a certificate from the operator's own CA ------------------------------------------------


def _ca_and_server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for localhost and 127.0.0.1 (with its key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callbox server")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


async def test_a_configured_certificate_verified_with_a_ca_file(tmp_path: Path) -> None:
    ca, cert, key = _ca_and_server_certificate(tmp_path)
    tls = server_tls(str(cert), str(key), tmp_path / "state")
    assert not tls.self_signed and not (tmp_path / "state" / TLS_DIR).exists()
    async with running_server(tmp_path) as plain:
        assert plain.url.startswith("http://")  # without [server.tls], plain HTTP as before
    server = SessionServer(
        validate({"server": {"listen": "127.0.0.1:0"}}).server, ":memory:", tls=tls
    )
    await server.start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        token = await server.create_user("room-z", "Room Z")
        client = SignalingClient(server.url, token, trust=client_trust(str(ca), None))
        try:
            welcome = await client.connect(timeout=10)
            assert welcome.uid == "room-z"
        finally:
            await client.close()
        # Another CA's word is not enough.
        other_ca, _, _ = _ca_and_server_certificate(tmp_path / "other")
        stranger = SignalingClient(server.url, token, trust=client_trust(str(other_ca), None))
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await stranger.connect(timeout=10)
        await stranger.close()
    finally:
        await server.stop()


def test_the_standalone_server_serves_tls(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\n[server.tls]\nenabled = true\n'
        f'[paths]\nstate = "{tmp_path / "state"}"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "server", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        cert_file = tmp_path / "state" / TLS_DIR / CERT_FILE
        for _ in range(200):
            if cert_file.exists():
                try:
                    context = ssl.create_default_context(cafile=cert_file)
                    served = served_certificate(f"https://127.0.0.1:{port}", context)
                    break
                except (OSError, ssl.SSLError):
                    pass
            assert process.poll() is None
            time.sleep(0.1)
        else:
            raise AssertionError("callbox server did not serve TLS")
        assert sha256(served) == fingerprint_of(cert_file.read_bytes())
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert b"TLS certificate SHA-256 " + fingerprint_of(cert_file.read_bytes()).encode() in errors
