"""[server] media and [[server.janus]]: what the config file may say, and what it may not."""

from pathlib import Path

import pytest

from appliance.config import ConfigError, load, to_toml, validate


def test_janus_servers_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "callbox.toml"
    path.write_text(
        '[server]\nmedia = "janus"\n'
        '[[server.janus]]\nurl = "ws://127.0.0.1:8188"\nroom_admin_key = "vroom"\n'
        'admin_url = "http://127.0.0.1:7088/admin"\nadmin_secret = "overlord"\n'
        '[[server.janus]]\nurl = "ws://10.0.0.2:8188"\npublic_url = "wss://janus-2.lan/ws"\n'
    )
    config, _ = load(path)
    first, second = config.server.janus
    assert config.server.media == "janus"
    assert first.room_admin_key is not None
    assert first.room_admin_key.get_secret_value() == "vroom"
    assert first.admin_secret is not None
    assert first.admin_secret.get_secret_value() == "overlord"
    assert second.public_url == "wss://janus-2.lan/ws"
    assert second.admin_url is None
    # Secrets never show in a dump (the REST API's view of the config).
    assert "overlord" not in config.model_dump_json()
    assert "vroom" not in config.model_dump_json()


def test_mesh_is_the_default() -> None:
    config = validate({})
    assert config.server.media == "mesh"
    assert config.server.janus == []


@pytest.mark.parametrize(
    ("server", "field"),
    [
        ({"media": "janus"}, "server"),
        ({"media": "sfu"}, "server.media"),
        ({"media": "janus", "janus": [{"url": "http://127.0.0.1:8188"}]}, "server.janus.0.url"),
        ({"media": "janus", "janus": [{}]}, "server.janus.0.url"),
        (
            {"janus": [{"url": "ws://x:1", "admin_url": "http://x:2/admin"}]},
            "server.janus.0",
        ),
        ({"janus": [{"url": "ws://x:1", "surprise": 1}]}, "server.janus.0.surprise"),
    ],
)
def test_bad_janus_settings_are_refused_by_name(server: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate({"server": server})
    assert err.value.field == field


def test_janus_servers_written_as_overrides_read_back(tmp_path: Path) -> None:
    data = {"server": {"media": "janus", "janus": [{"url": "ws://127.0.0.1:8188"}]}}
    text = to_toml(data)
    path = tmp_path / "c.toml"
    path.write_text(text)
    config, _ = load(path)
    assert config.server.janus[0].url == "ws://127.0.0.1:8188"
