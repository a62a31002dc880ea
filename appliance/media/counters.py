"""What a kit's calls have carried since the kit started, across every call: the figures
``GET /metrics`` serves. One object per ``Calls`` (several kits share a test process)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MediaCounters:
    calls: int = 0  # call sessions started
    frames_decoded: int = 0  # remote video frames decoded
    frames_dropped: int = 0  # local video frames dropped before an encoder took them
    audio_underruns: int = 0  # a participant's audio ran dry before the mixer's next block
    ice_restarts: int = 0  # connections replaced by new ones that went on to carry media
    bytes_received: int = 0  # on the calls' transports (RTP, RTCP, DTLS), all peers
    bytes_sent: int = 0
