"""Call settings: the seed's CallSettingsBuilder, its defaults and its enums."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum, StrEnum
from typing import Any, TypeVar

from appliance.media.view import View
from appliance.signaling.tokens import CallToken
from hal.audio.base import Route as AudioMode

__all__ = [
    "AudioMode",
    "AvatarMode",
    "CallSettings",
    "CallSettingsBuilder",
    "CallToken",
    "DisplayMode",
    "View",
]


class DisplayMode(StrEnum):
    default = "default"
    single = "single"
    spotlight = "spotlight"
    # Python-style aliases of the same members.
    DEFAULT = "default"
    SINGLE = "single"
    SPOTLIGHT = "spotlight"


class AvatarMode(StrEnum):
    circle = "circle"
    square = "square"
    fullscreen = "fullscreen"
    CIRCLE = "circle"
    SQUARE = "square"
    FULLSCREEN = "fullscreen"


MIN_IDLE_TIMEOUT = 1
MAX_IDLE_TIMEOUT = 24 * 3600


@dataclass(frozen=True)
class CallSettings:
    """Immutable settings of one session. Build with CallSettingsBuilder."""

    view: View | None = None
    call_token: CallToken | None = None
    default_layout: bool = True
    is_audio_only: bool = False
    is_single_mode: bool = False
    show_switch_to_video_call: bool = False
    enable_video_tile_click: bool = True
    enable_draggable_video_tile: bool = True
    end_call_button_disable: bool = False
    show_recording_button: bool = False
    switch_camera_button_disable: bool = False
    mute_audio_button_disable: bool = False
    pause_video_button_disable: bool = False
    audio_mode_button_disable: bool = False
    start_audio_muted: bool = False
    start_video_muted: bool = False
    mode: DisplayMode = DisplayMode.default
    avatar_mode: AvatarMode = AvatarMode.circle
    default_audio_mode: AudioMode | None = None  # None: keep the kit's current route
    idle_timeout_period: int = 180
    delegate: object | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, named as the builder's setters without set_."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _NOT_SERIALISED:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], **extra: Any) -> CallSettings:
        """Settings from JSON names (``{"mode": "spotlight", ...}``); unknown names and bad
        values raise ValueError naming the setting."""
        if not isinstance(data, dict):
            raise ValueError("settings must be an object")
        builder = CallSettingsBuilder(extra.get("view"), extra.get("call_token"))
        for name, value in data.items():
            if name in _NOT_SERIALISED or not hasattr(builder, f"set_{name}"):
                raise ValueError(f"{name}: unknown setting")
            getattr(builder, f"set_{name}")(value)
        if "delegate" in extra:
            builder.set_delegate(extra["delegate"])
        return builder.build()


_NOT_SERIALISED = frozenset({"view", "call_token", "delegate"})
E = TypeVar("E", bound=Enum)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def _enum(name: str, kind: type[E], value: object) -> E:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if value.lower() == str(member.value).lower():
                return member
    choices = ", ".join(sorted({str(m.value) for m in kind}))
    raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


class CallSettingsBuilder:
    """``CallSettingsBuilder(view, call_token).set_is_audio_only(True).build()``"""

    def __init__(self, view: View | None = None, call_token: CallToken | None = None) -> None:
        self._settings = CallSettings(view=view, call_token=call_token)

    def _set(self, **changes: Any) -> CallSettingsBuilder:
        self._settings = replace(self._settings, **changes)
        return self

    def set_default_layout(self, value: bool) -> CallSettingsBuilder:
        return self._set(default_layout=_bool("default_layout", value))

    def set_is_audio_only(self, value: bool) -> CallSettingsBuilder:
        return self._set(is_audio_only=_bool("is_audio_only", value))

    def set_is_single_mode(self, value: bool) -> CallSettingsBuilder:
        return self._set(is_single_mode=_bool("is_single_mode", value))

    def set_show_switch_to_video_call(self, value: bool) -> CallSettingsBuilder:
        return self._set(show_switch_to_video_call=_bool("show_switch_to_video_call", value))

    def set_enable_video_tile_click(self, value: bool) -> CallSettingsBuilder:
        return self._set(enable_video_tile_click=_bool("enable_video_tile_click", value))

    def set_enable_draggable_video_tile(self, value: bool) -> CallSettingsBuilder:
        return self._set(enable_draggable_video_tile=_bool("enable_draggable_video_tile", value))

    def set_end_call_button_disable(self, value: bool) -> CallSettingsBuilder:
        return self._set(end_call_button_disable=_bool("end_call_button_disable", value))

    def set_show_recording_button(self, value: bool) -> CallSettingsBuilder:
        return self._set(show_recording_button=_bool("show_recording_button", value))

    def set_switch_camera_button_disable(self, value: bool) -> CallSettingsBuilder:
        return self._set(switch_camera_button_disable=_bool("switch_camera_button_disable", value))

    def set_mute_audio_button_disable(self, value: bool) -> CallSettingsBuilder:
        return self._set(mute_audio_button_disable=_bool("mute_audio_button_disable", value))

    def set_pause_video_button_disable(self, value: bool) -> CallSettingsBuilder:
        return self._set(pause_video_button_disable=_bool("pause_video_button_disable", value))

    def set_audio_mode_button_disable(self, value: bool) -> CallSettingsBuilder:
        return self._set(audio_mode_button_disable=_bool("audio_mode_button_disable", value))

    def set_start_audio_muted(self, value: bool) -> CallSettingsBuilder:
        return self._set(start_audio_muted=_bool("start_audio_muted", value))

    def set_start_video_muted(self, value: bool) -> CallSettingsBuilder:
        return self._set(start_video_muted=_bool("start_video_muted", value))

    def set_mode(self, value: DisplayMode | str) -> CallSettingsBuilder:
        return self._set(mode=_enum("mode", DisplayMode, value))

    def set_avatar_mode(self, value: AvatarMode | str) -> CallSettingsBuilder:
        return self._set(avatar_mode=_enum("avatar_mode", AvatarMode, value))

    def set_default_audio_mode(self, value: AudioMode | str | None) -> CallSettingsBuilder:
        mode = None if value is None else _enum("default_audio_mode", AudioMode, value)
        return self._set(default_audio_mode=mode)

    def set_idle_timeout_period(self, value: int) -> CallSettingsBuilder:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"idle_timeout_period: expected whole seconds, got {value!r}")
        if not MIN_IDLE_TIMEOUT <= value <= MAX_IDLE_TIMEOUT:
            raise ValueError(
                f"idle_timeout_period: must be {MIN_IDLE_TIMEOUT} to {MAX_IDLE_TIMEOUT} "
                f"seconds, got {value}"
            )
        return self._set(idle_timeout_period=value)

    def set_delegate(self, delegate: object | None) -> CallSettingsBuilder:
        return self._set(delegate=delegate)

    def build(self) -> CallSettings:
        return self._settings
