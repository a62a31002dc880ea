"""PCMs of pyalsaaudio's module, which the caller passes in (only ``hal.audio.real``
imports it): opening one at the kit's format, and telling how one failed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from typing import Any

from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, AudioError
from hal.errors import DeviceGone

log = logging.getLogger(__name__)

PERIODS = 4  # ALSA buffer: 80 ms
JOIN_SECONDS = 2.0  # a PCM's thread is given this long to end


class AudioDeviceGone(AudioError, DeviceGone):
    """The PCM failed for good: the route (or the microphone) is gone."""


def open_pcm(alsa: Any, capture: bool, device: str, name: str) -> Any:
    """Open ``device`` for 48 kHz mono S16_LE in 960-frame periods, or raise AudioError."""
    try:
        pcm = alsa.PCM(
            type=alsa.PCM_CAPTURE if capture else alsa.PCM_PLAYBACK,
            mode=alsa.PCM_NORMAL,
            rate=SAMPLE_RATE,
            channels=1,
            format=alsa.PCM_FORMAT_S16_LE,
            periodsize=FRAME_SAMPLES,
            periods=PERIODS,
            device=device,
        )
    except alsa.ALSAAudioError as exc:
        raise AudioDeviceGone(name, f"cannot open ALSA PCM {device!r}: {exc}") from exc
    info = pcm.info()
    if info.get("period_size", FRAME_SAMPLES) != FRAME_SAMPLES:
        log.info("%s: %s runs in %s-frame periods", name, device, info.get("period_size"))
    got = (info.get("rate"), info.get("channels"), info.get("format_name"))
    if got != (SAMPLE_RATE, 1, "S16_LE"):
        pcm.close()
        raise AudioError(
            name,
            f"ALSA PCM {device!r} runs at {got[0]} Hz, {got[1]} channels, {got[2]}; "
            "use a plug device (plughw:...) so ALSA converts to 48 kHz mono S16_LE",
        )
    return pcm


def bluealsa_pcm(base: str, address: str, *, sco: bool) -> str:
    """bluez-alsa's PCM for one headset and profile (its 20-bluealsa.conf takes DEV and
    PROFILE, "a2dp" or "sco"). A ``base`` that names its own arguments is kept as it is."""
    if ":" in base:
        return base
    return f"{base}:DEV={address},PROFILE={'sco' if sco else 'a2dp'}"


def is_stall(error: Exception) -> bool:
    """alsa-lib's blocking read or write returns -EIO when the card delivered nothing for
    longer than its buffer (pyalsaaudio gives only the message, with the device after it)."""
    return str(error).startswith(os.strerror(errno.EIO))


def close_quietly(pcm: Any) -> None:
    """Close ``pcm`` whatever state it is in: it is being given up."""
    with contextlib.suppress(Exception):
        pcm.close()


def is_xrun(alsa: Any, pcm: Any) -> bool:
    try:
        return bool(pcm.state() == alsa.PCM_STATE_XRUN)
    except alsa.ALSAAudioError:
        return False
