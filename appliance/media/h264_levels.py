"""H.264 levels: what a camera mode needs, what each side of a call declares it can take.

The Pi 4's encoder (picamera2's ``H264Encoder``) writes level 4.0 in its SPS for every mode up
to 1080p30 (4.2 above, which the config refuses). aiortc declares ``profile-level-id``
42e01f/42001f (level 3.1), and so do browsers. With ``level-asymmetry-allowed=1`` each side's
``profile-level-id`` is the highest level it can receive (RFC 6184, 8.1), so:

- a kit declares level 4.0 (it decodes any level): kit to kit, the camera's stream goes as it
  is;
- toward a peer that declared less, a mode that fits the peer's level goes with its SPS
  relabelled at the level the mode needs; a mode that does not fit goes as frames the peer
  can take (aiortc encodes the small preview stream instead), never above what it declared.
"""

from __future__ import annotations

import re

from hal.camera.h264 import NAL_SPS, nal_units

# Table A-1: level_idc -> (MaxMBPS macroblocks/s, MaxFS macroblocks), in increasing order.
LEVELS: dict[int, tuple[int, int]] = {
    10: (1485, 99),
    11: (3000, 396),
    12: (6000, 396),
    13: (11880, 396),
    20: (11880, 396),
    21: (19800, 792),
    22: (20250, 1620),
    30: (40500, 1620),
    31: (108000, 3600),
    32: (216000, 5120),
    40: (245760, 8192),
    41: (245760, 8192),
    42: (522240, 8704),
    50: (589824, 22080),
    51: (983040, 36864),
    52: (2073600, 36864),
}
KIT_LEVEL = 40  # what a kit declares it can receive, and the level of a Pi 4 camera's SPS
# When a peer's SDP has no profile-level-id: WebRTC's (and aiortc's) 42e01f, level 3.1.
DEFAULT_LEVEL = 31

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) H264/90000\s*$", re.IGNORECASE | re.MULTILINE)
_FMTP = re.compile(r"^(a=fmtp:(\d+) )(.*?)\s*$", re.MULTILINE)
_PROFILE_LEVEL_ID = re.compile(r"profile-level-id=([0-9a-fA-F]{6})")


def macroblocks(width: int, height: int) -> int:
    return ((width + 15) // 16) * ((height + 15) // 16)


def level_needed(width: int, height: int, fps: float) -> int:
    """The lowest level whose frame size and macroblock rate hold this mode."""
    frame = macroblocks(width, height)
    for level, (max_mbps, max_fs) in LEVELS.items():
        if frame <= max_fs and frame * fps <= max_mbps:
            return level
    raise ValueError(f"{width}x{height} at {fps} fps is beyond every H.264 level")


def level_name(level: int) -> str:
    return f"{level // 10}.{level % 10}"


def declare_level(sdp: str, level: int = KIT_LEVEL) -> str:
    """``sdp`` with every H.264 format declaring at least ``level`` in its
    profile-level-id (profile and constraints kept)."""
    h264 = {match.group(1) for match in _RTPMAP.finditer(sdp)}

    def raise_level(fmtp: re.Match[str]) -> str:
        if fmtp.group(2) not in h264:
            return fmtp.group(0)

        def replace(found: re.Match[str]) -> str:
            value = found.group(1)
            current = int(value[4:], 16)
            return f"profile-level-id={value[:4]}{max(current, level):02x}"

        return fmtp.group(1) + _PROFILE_LEVEL_ID.sub(replace, fmtp.group(3))

    return _FMTP.sub(raise_level, sdp)


def declared_level(sdp: str | None, payload_type: int) -> int | None:
    """The level the side that wrote ``sdp`` can receive for this H.264 payload type; None
    when the SDP does not list it as H.264."""
    if sdp is None:
        return None
    if str(payload_type) not in {match.group(1) for match in _RTPMAP.finditer(sdp)}:
        return None
    for fmtp in _FMTP.finditer(sdp):
        if fmtp.group(2) == str(payload_type):
            found = _PROFILE_LEVEL_ID.search(fmtp.group(3))
            if found:
                return int(found.group(1)[4:], 16)
    return DEFAULT_LEVEL


def sps_level(data: bytes) -> int | None:
    """level_idc of the first SPS in an Annex B access unit."""
    for unit in nal_units(data):
        if unit and unit[0] & 0x1F == NAL_SPS and len(unit) >= 4:
            return unit[3]
    return None


def relabel_sps(data: bytes, level: int) -> bytes:
    """``data`` with each SPS's level_idc set to ``level``. The byte follows profile_idc and
    the constraint flags, both non-zero in the profiles used here, so no emulation-prevention
    byte is affected."""
    out = []
    changed = False
    for unit in nal_units(data):
        if unit and unit[0] & 0x1F == NAL_SPS and len(unit) >= 4 and unit[3] != level:
            unit = unit[:3] + bytes([level]) + unit[4:]
            changed = True
        out.append(unit)
    if not changed:
        return data
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in out)
