from pathlib import Path

import pytest

from appliance.config import (
    ConfigError,
    load,
    merge,
    read_toml,
    save_overrides,
    to_toml,
    validate,
)


def test_every_key_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    config, _ = load(path)
    assert config.kit.uid == "room-a"
    assert config.api.listen == "127.0.0.1:8080"
    assert config.server.embedded is True
    assert config.hal.backend == "auto"


def test_layers_file_then_overrides(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = tmp_path / "callbox.toml"
    path.write_text(f'[kit]\nuid = "room-b"\nname = "B"\n[paths]\nstate = "{state}"\n')
    save_overrides(state, {"kit": {"name": "Board room"}, "hal": {"camera": {"fps": 15}}})
    config, file_layer = load(path)
    assert config.kit.uid == "room-b"
    assert config.kit.name == "Board room"
    assert config.hal.camera.fps == 15
    assert file_layer["kit"]["name"] == "B"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kit": {"uid": "has space"}}, "kit.uid"),
        ({"api": {"listen": "nowhere"}}, "api.listen"),
        ({"hal": {"camera": {"fps": 500}}}, "hal.camera.fps"),
        ({"hal": {"backend": "magic"}}, "hal.backend"),
        ({"server": {"ring_timeout": -1}}, "server.ring_timeout"),
        ({"calls": {"default_settings": {"mode": "grid"}}}, "calls.default_settings"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(data)
    assert err.value.field == field


def test_bad_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[kit\nuid=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.toml")


def test_toml_round_trip(tmp_path: Path) -> None:
    data = {
        "kit": {"uid": "x", "name": 'Quote " and \\ back'},
        "hal": {"backend": "fake", "camera": {"width": 320, "devices": ["a", "b"]}},
        "calls": {"auto_answer": True, "default_settings": {"mode": "spotlight"}},
    }
    path = tmp_path / "c.toml"
    path.write_text(to_toml(data))
    assert read_toml(path) == data
    validate(read_toml(path))


def test_merge_is_deep() -> None:
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_the_readme_says_where_the_state_directory_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = validate({})
    assert config.state_dir == tmp_path / ".local" / "state" / "callbox"
    assert "`~/.local/state/callbox`" in readme
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert validate({}).state_dir == tmp_path / "xdg" / "callbox"
    assert "`$XDG_STATE_HOME/callbox`" in readme
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/callbox")
    assert validate({}).state_dir == Path("/var/lib/callbox")
    assert "`/var/lib/callbox` under systemd" in readme
