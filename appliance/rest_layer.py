"""The REST layer of the config: which keys ``PATCH /api/v1/config`` may set, and what the
device settings set there may say.

The config file is the operator's: it may name any ALSA PCM and any path. The REST layer
(``overrides.toml``) is written by whoever holds the API token, from the network, so it may
set only the keys in ``REST_KEYS``, and device settings only to values that name a device:

- ALSA PCMs of the forms a kit uses: ``default``, ``sysdefault``, ``hw:``/``plughw:`` with a
  card and device, ``bluealsa`` (with a Bluetooth address and profile), or a name defined in
  the system's ``/etc/asound.conf``. Never a plugin string: ``file:``, ``pipe``, ``plug:``
  and the like can name files to overwrite and commands for alsa-lib to run.
- the framebuffer as ``/dev/fbN``; input devices by name or under ``/dev/input``; cameras by
  id or under ``/dev``.

Identity, paths, secrets, and where the kit sends its secrets (``server.url``,
``server.embedded``, TLS, ``ca_file``/``fingerprint``, Janus servers) stay in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ASOUND_CONF = Path("/etc/asound.conf")

# Dotted keys (or whole tables) that the REST layer may set.
REST_KEYS: frozenset[str] = frozenset(
    {
        "kit.name",
        "api.listen",
        "server.ring_timeout",
        "server.token_ttl",
        "server.reconnect_grace",
        "server.join_timeout",
        "server.limits",
        "hal",
        "calls",
        "audio",
    }
)

# Inside those, what only the file may set: who is exempt from the per-address limits.
FILE_ONLY = frozenset({"server.limits.exempt_addresses"})

PCM_KEYS = frozenset(
    {
        "hal.audio.capture",
        "hal.audio.speaker",
        "hal.audio.earpiece",
        "hal.audio.headphones",
        "hal.audio.bluetooth",
    }
)

_ID = r"[A-Za-z0-9_]{1,32}"
_MAC = r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
_PCM_FORMS = re.compile(
    "|".join(
        (
            rf"(?:sys)?default(?::(?:CARD=)?{_ID})?",
            rf"(?:plug)?hw:(?:CARD=)?{_ID}(?:,(?:DEV=)?\d{{1,2}}(?:,(?:SUBDEV=)?\d{{1,2}})?)?",
            rf"bluealsa(?::(?:DEV=)?{_MAC}(?:,(?:PROFILE=)?(?:a2dp|sco))?)?",
        )
    )
)
_DEFINED_PCM = re.compile(r'^\s*pcm\.!?"?([A-Za-z0-9_-]{1,64})"?\s*[{.]', re.MULTILINE)
_FRAMEBUFFER = re.compile(r"/dev/fb[0-9]{1,2}")
_INPUT_PATH = re.compile(r"/dev/input/(?:by-id/|by-path/)?[A-Za-z0-9_.:@+-]{1,128}")
_DEV_PATH = re.compile(r"/dev/[A-Za-z0-9_.:@+/-]{1,128}")
_NAME = re.compile(r"[^\x00-\x1f\x7f/][^\x00-\x1f\x7f]{0,127}")


class RestLayerError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def rest_may_set(path: str) -> bool:
    """Whether the REST layer may set the dotted key ``path`` (or all of a table)."""
    if any(path == key or path.startswith(key + ".") for key in FILE_ONLY):
        return False
    return any(path == key or path.startswith(key + ".") for key in REST_KEYS)


def rest_may_set_within(path: str) -> bool:
    """Whether the REST layer may set ``path`` or something inside it."""
    return rest_may_set(path) or any(key.startswith(path + ".") for key in REST_KEYS)


def defined_pcms(asound_conf: Path = ASOUND_CONF) -> frozenset[str]:
    """The PCM names the system's asound.conf defines (``pcm.NAME { ... }``)."""
    try:
        text = asound_conf.read_text(errors="replace")
    except OSError:
        return frozenset()
    return frozenset(_DEFINED_PCM.findall(text))


def check_pcm(value: str, defined: Iterable[str] = ()) -> None:
    if _PCM_FORMS.fullmatch(value) or value in set(defined):
        return
    raise ValueError(
        f"{value!r} is not an ALSA device a kit uses: default, sysdefault, hw:CARD,DEV, "
        "plughw:CARD,DEV, bluealsa, or a PCM defined in /etc/asound.conf (other PCMs only "
        "in the config file)"
    )


def _check_path(value: str, pattern: re.Pattern[str], where: str) -> None:
    if not pattern.fullmatch(value) or os.path.normpath(value) != value:
        raise ValueError(f"{value!r}: expected {where}")


def _check_device_name(value: str, pattern: re.Pattern[str], where: str) -> None:
    if value.startswith("/"):
        _check_path(value, pattern, where)
    elif not _NAME.fullmatch(value):
        raise ValueError(f"{value!r}: expected a device name (printable) or {where}")


def check_rest_layer(overrides: dict[str, Any], defined: Iterable[str] = ()) -> None:
    """Raises RestLayerError naming the first key of ``overrides`` the REST layer may not
    set, or the first device setting that names no device."""
    defined = frozenset(defined)
    for path, value in _leaves(overrides):
        if not rest_may_set(path):
            raise RestLayerError(path, "set in the config file only, not over the REST API")
        try:
            if path in PCM_KEYS and value is not None:
                check_pcm(_string(value), defined)
            elif path == "hal.display.framebuffer":
                _check_path(_string(value), _FRAMEBUFFER, "a framebuffer device /dev/fbN")
            elif path == "hal.input.devices":
                for item in _strings(value):
                    _check_device_name(item, _INPUT_PATH, "a path under /dev/input")
            elif path == "hal.camera.devices":
                for item in _strings(value):
                    _check_device_name(item, _DEV_PATH, "a path under /dev")
        except ValueError as err:
            raise RestLayerError(path, str(err)) from None


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("expected a list of strings")
    return [_string(item) for item in value]


def _leaves(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        # calls.default_settings is one setting (a table of builder names), not keys.
        if isinstance(value, dict) and path != "calls.default_settings":
            out += _leaves(value, path + ".")
        else:
            out.append((path, value))
    return out
