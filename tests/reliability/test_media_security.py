"""Media between kits is DTLS-SRTP: both peers' DTLS transports are connected with SRTP
sessions keyed from the handshake, and the RTP payloads on the wire are not the plaintext
the encoders produced (captured off the loopback interface as root, else at the ICE socket).
(Call tokens: tests/server/test_tokens.py and tests/calls/test_refusals.py; the REST token:
tests/api/test_auth.py; TLS for signaling and REST: test_tls.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCDtlsTransport
from aiortc.rtp import is_rtcp

from tests.kits import KitFactory

Address = tuple[str, int]


@dataclass
class Wire:
    """UDP datagrams as they left a socket: (source, destination, payload)."""

    how: str
    datagrams: list[tuple[Address, Address, bytes]] = field(default_factory=list)


@contextlib.contextmanager
def loopback_capture() -> Iterator[Wire | None]:
    """Every IPv4 UDP datagram on ``lo`` while open (an AF_PACKET socket: needs root)."""
    try:
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        sniffer.bind(("lo", 0))
    except (PermissionError, OSError):
        yield None
        return
    sniffer.settimeout(0.1)
    wire = Wire("packet capture on lo")
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                frame = sniffer.recv(65_535)
            except TimeoutError:
                continue
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            header = (ip[0] & 0x0F) * 4
            source, destination = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            sport, dport, length = struct.unpack("!HHH", ip[header : header + 6])
            payload = ip[header + 8 : header + length]
            wire.datagrams.append(((source, sport), (destination, dport), payload))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield wire
    finally:
        stop.set()
        thread.join()
        sniffer.close()


@contextlib.contextmanager
def socket_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    """Without root: the datagrams as aioice hands them to the UDP socket."""
    wire = Wire("the ICE layer's sendto")
    send_data = StunProtocol.send_data

    async def recording(self: StunProtocol, data: bytes, addr: Address) -> None:
        local = self.transport.get_extra_info("sockname")[:2]
        wire.datagrams.append((local, addr[:2], bytes(data)))
        await send_data(self, data, addr)

    monkeypatch.setattr(StunProtocol, "send_data", recording)
    yield wire


def rtp_header_length(packet: bytes) -> int:
    csrc = packet[0] & 0x0F
    length = 12 + 4 * csrc
    if packet[0] & 0x10:  # header extension
        words = struct.unpack("!H", packet[length + 2 : length + 4])[0]
        length += 4 + 4 * words
    return length


async def test_media_is_dtls_srtp_and_the_wire_carries_no_plaintext(
    kits: KitFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    plaintext: dict[int, list[bytes]] = {}  # per DTLS transport, RTP before protection
    send_rtp = RTCDtlsTransport._send_rtp

    async def recording(self: RTCDtlsTransport, data: bytes) -> None:
        if not is_rtcp(data):
            plaintext.setdefault(id(self), []).append(bytes(data))
        await send_rtp(self, data)

    monkeypatch.setattr(RTCDtlsTransport, "_send_rtp", recording)

    with contextlib.ExitStack() as stack:
        wire = stack.enter_context(loopback_capture()) if os.geteuid() == 0 else None
        if wire is None:
            wire = stack.enter_context(socket_hook(monkeypatch))
        a = await kits("room-a")
        b = await kits("room-b")
        await a.join("secret")
        await b.join("secret")
        await a.wait_for_video_from("room-b")
        await b.wait_for_video_from("room-a")
        await a.wait_to_hear(b.tone_hz)
        await asyncio.sleep(1.0)  # a little more of both media on the wire
    assert a.calls.session is not None and b.calls.session is not None

    for me, other_kit in ((a, b), (b, a)):
        other = other_kit.uid
        pc = me.calls.session.peers[other].pc  # type: ignore[union-attr]
        # The negotiated profile is DTLS-SRTP with a certificate fingerprint.
        remote_sdp = pc.remoteDescription.sdp
        assert "UDP/TLS/RTP/SAVPF" in remote_sdp and "a=fingerprint:sha-256" in remote_sdp
        transports = {t.sender.transport for t in pc.getTransceivers()}
        assert len(transports) == 1  # bundled: one DTLS transport carries audio and video
        (dtls,) = transports
        assert dtls.state == "connected"
        assert dtls._tx_srtp is not None and dtls._rx_srtp is not None
        selected = dtls._ssl.get_selected_srtp_profile()
        assert selected in {p.openssl_profile for p in SRTP_PROFILES}, selected
        # The far kit's certificate is the one this kit's SDP pinned (aiortc fails the
        # handshake on a mismatch; "connected" above means it matched).
        far = other_kit.calls.session.peers[me.uid].pc  # type: ignore[union-attr]
        (far_dtls,) = {t.sender.transport for t in far.getTransceivers()}
        far_fingerprints = {
            f.value for f in far_dtls.getLocalParameters().fingerprints if f.algorithm == "sha-256"
        }
        assert far_fingerprints and all(
            f"a=fingerprint:sha-256 {value}" in remote_sdp for value in far_fingerprints
        )

        # What left this kit for the other: its encoder's RTP, seen on the wire.
        pair = dtls.transport._connection._nominated[1]
        local = (pair.local_candidate.host, pair.local_candidate.port)
        remote = pair.remote_addr[:2]
        sent = [d for s, r, d in wire.datagrams if s == local and r == remote]
        rtp_on_wire = {d[:12]: d for d in sent if len(d) > 12 and 128 <= d[0] < 192}
        originals = plaintext[id(dtls)]
        assert len(originals) > 50
        matched = 0
        for original in originals:
            on_wire = rtp_on_wire.get(original[:12])  # the RTP header travels in the clear
            if on_wire is None:
                continue
            matched += 1
            start = rtp_header_length(original)
            assert on_wire[start : len(original)] != original[start:], wire.how
            assert len(on_wire) > len(original)  # plus the SRTP authentication tag
        assert matched >= 0.9 * len(originals), (matched, len(originals), wire.how)
        # No run of plaintext payload shows up anywhere on the wire.
        everything = b"".join(d for _, _, d in wire.datagrams)
        for original in originals[::10]:
            payload = original[rtp_header_length(original) :]
            if len(payload) >= 24:
                assert payload[:24] not in everything
