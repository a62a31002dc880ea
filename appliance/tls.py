"""TLS for the session server and the REST API, and how a kit trusts a server.

A listening side uses the certificate and key the config names, or else a self-signed
certificate made on first start in ``<state>/tls/`` (EC P-256, ten years, named for the
host, ``localhost`` and the loopback addresses) and kept for later starts, so its SHA-256
fingerprint, which the screen shows, stays the same. Certificates are made with the
``cryptography`` package (a dependency of aiortc).

A kit reaching an ``https://`` server verifies it against the system's CAs, a CA file, or a
pinned SHA-256 fingerprint of the server's certificate (for self-signed servers).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from appliance.storage import atomic_write_bytes

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 3650

# What aiohttp takes as ``ssl=``: True (the system's CAs), a context, or a pinned fingerprint.
ClientTrust = bool | ssl.SSLContext | aiohttp.Fingerprint


class TlsError(Exception):
    """A certificate or key that cannot be used, or a trust setting that makes no sense."""


@dataclass(frozen=True)
class ServerTls:
    """What a listening socket serves: its context, and the certificate's fingerprint."""

    context: ssl.SSLContext
    cert_path: Path
    fingerprint: str  # SHA-256 of the certificate (DER), "AB:CD:..." as browsers show it
    self_signed: bool


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def fingerprint_of(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate in ``cert_pem`` (its DER bytes). Read with the
    standard library: the cryptography package (about 16 MiB resident) is loaded only to
    make a certificate, not at every start; ``ssl`` checks the certificate itself."""
    match = _PEM_CERTIFICATE.search(cert_pem)
    if match is None:
        raise ValueError("no PEM certificate in it")
    der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    return format_fingerprint(hashlib.sha256(der).digest())


def format_fingerprint(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


def parse_fingerprint(text: str) -> bytes:
    """A SHA-256 fingerprint written with or without colons, in either case."""
    digits = text.replace(":", "").strip()
    try:
        digest = bytes.fromhex(digits)
    except ValueError:
        raise TlsError(f"fingerprint: not hexadecimal: {text!r}") from None
    if len(digest) != 32:
        raise TlsError(f"fingerprint: a SHA-256 fingerprint has 32 bytes, got {len(digest)}")
    return digest


def server_tls(
    cert: str | None, key: str | None, state_dir: Path, hosts: list[str] | None = None
) -> ServerTls:
    """The TLS a listening socket serves: ``cert`` and ``key`` (PEM files), or the state
    directory's self-signed certificate, made now if there is none. Blocking: call it in a
    thread."""
    self_signed = cert is None
    if cert is None or key is None:
        cert_path, key_path = self_signed_certificate(state_dir, hosts or [])
    else:
        cert_path, key_path = Path(cert), Path(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
        fingerprint = fingerprint_of(cert_path.read_bytes())
    except (OSError, ssl.SSLError, ValueError) as err:
        raise TlsError(f"cannot use {cert_path} with {key_path}: {err}") from None
    return ServerTls(context, cert_path, fingerprint, self_signed)


def self_signed_certificate(state_dir: Path, hosts: list[str]) -> tuple[Path, Path]:
    """``<state>/tls/cert.pem`` and ``key.pem``: kept if both are there, else made."""
    directory = state_dir / TLS_DIR
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    # Loaded here only: see fingerprint_of.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hostname = socket.gethostname()
    names = _unique([hostname, f"{hostname}.local", "localhost", *hosts])
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"callbox {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    alternative: list[x509.GeneralName] = []
    for name in [*names, "127.0.0.1", "::1"]:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # a Pi's clock may lag at boot
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a certificate is only ever there with its key.
    atomic_write_bytes(key_path, key_pem, mode=0o600)
    atomic_write_bytes(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning(
        "made a self-signed TLS certificate %s (SHA-256 %s)",
        cert_path,
        fingerprint_of(cert_path.read_bytes()),
    )
    return cert_path, key_path


def pinned(tls: ServerTls) -> ClientTrust:
    """Trust exactly this server's certificate (a kit reaching its own embedded server)."""
    return aiohttp.Fingerprint(parse_fingerprint(tls.fingerprint))


def pinned_file(cert: str | None, state_dir: Path) -> ClientTrust:
    """Trust exactly the certificate this machine's own server serves: ``cert``, or the
    state directory's self-signed one (``callbox users add`` on the kit that hosts the
    server). Raises TlsError when it cannot be read (the server never started)."""
    path = Path(cert) if cert is not None else state_dir / TLS_DIR / CERT_FILE
    try:
        digest = fingerprint_of(path.read_bytes())
    except (OSError, ValueError) as err:
        raise TlsError(
            f"cannot read this machine's server certificate {path} ({err}); has the server "
            "started once?"
        ) from None
    return aiohttp.Fingerprint(parse_fingerprint(digest))


def client_trust(ca_file: str | None, fingerprint: str | None) -> ClientTrust:
    """How a kit checks an https server: a pinned certificate fingerprint, a CA file, or
    (neither) the system's CAs."""
    if ca_file is not None and fingerprint is not None:
        raise TlsError("server.ca_file and server.fingerprint: set one, not both")
    if fingerprint is not None:
        return aiohttp.Fingerprint(parse_fingerprint(fingerprint))
    if ca_file is not None:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as err:
            raise TlsError(f"server.ca_file: cannot load {ca_file}: {err}") from None
    return True


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        if name and name not in ("0.0.0.0", "::"):
            seen.setdefault(name, None)
    return list(seen)
