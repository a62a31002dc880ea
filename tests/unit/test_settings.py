from typing import Any

import pytest

from appliance.calls import (
    AudioMode,
    AvatarMode,
    CallSettings,
    CallSettingsBuilder,
    DisplayMode,
)

SEED_DEFAULTS = {
    "default_layout": True,
    "is_audio_only": False,
    "enable_video_tile_click": True,
    "enable_draggable_video_tile": True,
    "end_call_button_disable": False,
    "show_recording_button": False,
    "switch_camera_button_disable": False,
    "mute_audio_button_disable": False,
    "pause_video_button_disable": False,
    "audio_mode_button_disable": False,
    "start_audio_muted": False,
    "start_video_muted": False,
    "mode": "default",
    "avatar_mode": "circle",
    "idle_timeout_period": 180,
}
BOOL_SETTERS = [
    "default_layout",
    "is_audio_only",
    "is_single_mode",
    "show_switch_to_video_call",
    "enable_video_tile_click",
    "enable_draggable_video_tile",
    "end_call_button_disable",
    "show_recording_button",
    "switch_camera_button_disable",
    "mute_audio_button_disable",
    "pause_video_button_disable",
    "audio_mode_button_disable",
    "start_audio_muted",
    "start_video_muted",
]


def test_defaults_are_the_seeds() -> None:
    settings = CallSettingsBuilder(None, None).build().to_dict()
    for name, value in SEED_DEFAULTS.items():
        assert settings[name] == value, name


@pytest.mark.parametrize("name", BOOL_SETTERS)
def test_every_bool_setter_sets_and_validates(name: str) -> None:
    builder = CallSettingsBuilder()
    default = getattr(builder.build(), name)
    assert getattr(getattr(builder, f"set_{name}")(not default).build(), name) is (not default)
    with pytest.raises(ValueError, match=name):
        getattr(builder, f"set_{name}")("yes")
    with pytest.raises(ValueError, match=name):
        getattr(builder, f"set_{name}")(1)


def test_enums_have_the_seed_members_and_accept_names() -> None:
    assert {m.value for m in DisplayMode} == {"default", "single", "spotlight"}
    assert DisplayMode.spotlight is DisplayMode.SPOTLIGHT
    assert {m.value for m in AvatarMode} == {"circle", "square", "fullscreen"}
    assert {m.value for m in AudioMode} == {"SPEAKER", "EARPIECE", "BLUETOOTH", "HEADPHONES"}
    settings = (
        CallSettingsBuilder()
        .set_mode("Spotlight")
        .set_avatar_mode(AvatarMode.square)
        .set_default_audio_mode("headphones")
        .build()
    )
    assert settings.mode is DisplayMode.spotlight
    assert settings.avatar_mode is AvatarMode.square
    assert settings.default_audio_mode is AudioMode.HEADPHONES


@pytest.mark.parametrize(
    ("setter", "value"),
    [
        ("mode", "grid"),
        ("avatar_mode", "hexagon"),
        ("default_audio_mode", "LOUDSPEAKER"),
        ("idle_timeout_period", 0),
        ("idle_timeout_period", -5),
        ("idle_timeout_period", 10**9),
        ("idle_timeout_period", 1.5),
        ("idle_timeout_period", True),
        ("idle_timeout_period", "180"),
    ],
)
def test_bad_values_name_the_setting(setter: str, value: Any) -> None:
    with pytest.raises(ValueError, match=setter):
        getattr(CallSettingsBuilder(), f"set_{setter}")(value)


def test_from_dict_round_trips_and_refuses_unknown_names() -> None:
    data = {"is_audio_only": True, "mode": "single", "idle_timeout_period": 60}
    settings = CallSettings.from_dict(data)
    assert settings.to_dict() | data == settings.to_dict()
    assert CallSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="colour"):
        CallSettings.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="delegate"):
        CallSettings.from_dict({"delegate": "x"})
    with pytest.raises(ValueError, match="settings"):
        CallSettings.from_dict(["mode"])  # type: ignore[arg-type]


def test_builder_is_chainable_and_settings_immutable() -> None:
    delegate = object()
    settings = (
        CallSettingsBuilder("view", None)  # type: ignore[arg-type]
        .set_is_audio_only(True)
        .set_start_audio_muted(True)
        .set_delegate(delegate)
        .build()
    )
    assert settings.is_audio_only
    assert settings.start_audio_muted
    assert settings.delegate is delegate
    with pytest.raises(AttributeError):
        settings.is_audio_only = False  # type: ignore[misc]
