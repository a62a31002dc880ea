"""The sound cards the kernel lists in ``/proc/asound``, and which of them can capture.

On Raspberry Pi OS Lite card 0 is the Pi's headphone jack (and the HDMI outputs follow),
none of which has a microphone; a USB speakerphone is a later card. So ``default`` cannot
capture there, and the microphone is looked for among the cards: USB ones first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROC_ASOUND = Path("/proc/asound")

# " 2 [Speakerphone   ]: USB-Audio - Jabra SPEAK 510 USB"
_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(\S+)\s+-\s+(.*)$")
_CAPTURE_DIR = re.compile(r"^pcm(\d+)c$")


@dataclass(frozen=True)
class SoundCard:
    index: int
    id: str  # ALSA's card id, as in CARD=...
    driver: str
    name: str
    capture_devices: tuple[int, ...]  # PCM device numbers that capture

    @property
    def usb(self) -> bool:
        return self.driver == "USB-Audio"

    def capture_pcm(self) -> str:
        """A PCM name for this card's first capture device, with ALSA's conversions."""
        return f"plughw:CARD={self.id},DEV={self.capture_devices[0]}"


def list_cards(proc: Path = PROC_ASOUND) -> list[SoundCard]:
    try:
        text = (proc / "cards").read_text()
    except OSError:
        return []
    cards = []
    for line in text.splitlines():
        found = _CARD_LINE.match(line)
        if found is None:
            continue
        index = int(found.group(1))
        try:
            entries = [p.name for p in (proc / f"card{index}").iterdir()]
        except OSError:
            entries = []
        capture = sorted(int(m.group(1)) for m in map(_CAPTURE_DIR.match, entries) if m is not None)
        cards.append(
            SoundCard(index, found.group(2), found.group(3), found.group(4).strip(), tuple(capture))
        )
    return cards


def capture_candidates(cards: list[SoundCard]) -> list[SoundCard]:
    """Cards that can capture, USB ones (a speakerphone) first, each group in card order."""
    able = [card for card in cards if card.capture_devices]
    return sorted(able, key=lambda card: (not card.usb, card.index))
