"""GET/PATCH /api/v1/config: validation with the config models, the override layer written
power-loss-safe, and what applies now, on the next call, or after a restart."""

import os
from pathlib import Path
from typing import Any

import pytest

from appliance.config import OVERRIDES_FILE, load, read_toml
from appliance.daemon import Daemon
from tests.api.daemon import Api


def overrides_path(kit: Daemon) -> Path:
    return kit.config.state_dir / OVERRIDES_FILE


async def test_get_shows_the_effective_config_without_secrets(api: Api) -> None:
    body = await api.ok("GET", "/config")
    assert body["config"]["kit"]["uid"] == "room-a"
    assert body["config"]["hal"]["camera"]["width"] == 320
    assert body["config"]["api"]["token"] is None  # set, but never shown
    assert body["pending"] == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"hal": {"camera": {"fps": 500}}}, "hal.camera.fps"),
        ({"kit": {"name": ""}}, "kit.name"),
        ({"api": {"listen": "nowhere"}}, "api.listen"),
        ({"api": {"listen": "127.0.0.1:99999"}}, "api.listen"),  # the model's own validator
        ({"calls": {"default_settings": {"mode": "grid"}}}, "calls.default_settings"),
        ({"calls": {"auto_answer": "yes"}}, "calls.auto_answer"),
        ({"api": {"token": "x" * 20}}, "api.token"),  # secrets live in the config file
        ({"kit": {"uid": "room-z"}}, "kit.uid"),  # so does the identity
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_a_refused_patch_names_the_field_and_leaves_the_file_byte_identical(
    kit: Daemon, api: Api, patch: dict[str, Any], field: str
) -> None:
    await api.ok("PATCH", "/config", {"kit": {"name": "Board room"}})
    before = overrides_path(kit).read_bytes()
    status, body = await api.call("PATCH", "/config", patch)
    assert status == 422, body
    assert body["error"]["field"] == field
    assert field in body["error"]["message"]
    assert overrides_path(kit).read_bytes() == before
    assert (await api.ok("GET", "/config"))["config"]["kit"]["name"] == "Board room"


async def test_bad_json_is_400_and_writes_nothing(kit: Daemon, api: Api) -> None:
    status, body = await api.call("PATCH", "/config", raw=b'{"kit": ')
    assert status == 400
    assert body["error"]["code"] == "invalid-json"
    status, body = await api.call("PATCH", "/config", raw=b"[1, 2]")
    assert status == 422
    assert not overrides_path(kit).exists()


async def test_changes_say_when_they_apply(kit: Daemon, api: Api) -> None:
    assert kit.kit is not None and kit.calls is not None
    body = await api.ok(
        "PATCH",
        "/config",
        {
            "calls": {"auto_answer": True, "default_settings": {"start_audio_muted": True}},
            "hal": {"camera": {"fps": 10}, "buttons": {"bounce_ms": 50}},
            "api": {"listen": "0.0.0.0:8080"},
        },
    )
    changes = {c["field"]: c["applies"] for c in body["changes"]}
    assert changes == {
        "calls.auto_answer": "now",
        "hal.camera.fps": "next-call",
        "calls.default_settings": "next-call",
        "hal.buttons.bounce_ms": "restart",
        "api.listen": "restart",
    }
    pending = {c["field"] for c in (await api.ok("GET", "/config"))["pending"]}
    assert pending == {"hal.buttons.bounce_ms", "api.listen"}
    # In effect at once, or for the next call:
    assert kit.kit.auto_answer is True
    assert kit.calls.options.video_format.fps == 10
    assert kit.kit.settings().start_audio_muted is True
    # The file holds only the overrides, as TOML the config loader reads.
    assert read_toml(overrides_path(kit)) == {
        "calls": {"auto_answer": True, "default_settings": {"start_audio_muted": True}},
        "hal": {"camera": {"fps": 10}, "buttons": {"bounce_ms": 50}},
        "api": {"listen": "0.0.0.0:8080"},
    }

    # null drops an override: the layer below (here the test's config) comes back.
    body = await api.ok("PATCH", "/config", {"api": {"listen": None}, "hal": None})
    assert body["config"]["api"]["listen"] == "127.0.0.1:0"
    assert body["config"]["hal"]["camera"]["fps"] == 15
    assert body["overrides"] == {
        "calls": {"auto_answer": True, "default_settings": {"start_audio_muted": True}}
    }


async def test_the_write_is_power_loss_safe(
    kit: Daemon, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    await api.ok("PATCH", "/config", {"kit": {"name": "Lobby"}})
    state = str(kit.config.state_dir)
    assert any(p.startswith(state + "/." + OVERRIDES_FILE) for p in synced)  # the temp file
    assert state in synced  # then the directory, after the rename
    assert sorted(p.name for p in kit.config.state_dir.iterdir() if "overrides" in p.name) == [
        OVERRIDES_FILE
    ]


async def test_overrides_layer_over_the_config_file_on_the_next_start(
    tmp_path: Path, kit: Daemon, api: Api
) -> None:
    await api.ok(
        "PATCH", "/config", {"kit": {"name": "Board room"}, "calls": {"auto_answer": True}}
    )
    config_file = tmp_path / "callbox.toml"
    config_file.write_text(
        f'[kit]\nuid = "room-a"\nname = "File name"\n[paths]\nstate = "{kit.config.state_dir}"\n'
    )
    config, file_layer = load(config_file)
    assert config.kit.name == "Board room"
    assert config.calls.auto_answer is True
    assert file_layer["kit"]["name"] == "File name"


async def test_secrets_cannot_be_set_over_rest(kit: Daemon, api: Api) -> None:
    secret = "s3cret-" * 3
    status, body = await api.call(
        "PATCH",
        "/config",
        {"server": {"janus": [{"url": "ws://127.0.0.1:8188", "api_secret": secret}]}},
    )
    assert status == 422, body
    assert body["error"]["field"] == "server.janus"
    assert not overrides_path(kit).exists()
    assert secret not in str(await api.ok("GET", "/config"))


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("my-pi", "'my-pi' is not an address to listen on: write host:port, such as"),
        ("0.0.0.0:99999", "'0.0.0.0:99999': the port must be a number from 0 to 65535"),
    ],
)
async def test_a_bad_listen_address_gets_a_human_message(api: Api, listen: str, said: str) -> None:
    status, body = await api.call("PATCH", "/config", {"api": {"listen": listen}})
    assert (status, body["error"]["field"]) == (422, "api.listen")
    assert said in body["error"]["message"]
    assert "pattern" not in body["error"]["message"] and "^" not in body["error"]["message"]
    assert "Value error" not in body["error"]["message"]


async def test_get_says_which_keys_are_the_config_files_alone(api: Api) -> None:
    reply = await api.ok("GET", "/config")
    assert "kit.name" in reply["rest_keys"] and "hal" in reply["rest_keys"]
    assert "kit.uid" not in reply["rest_keys"] and "server.url" not in reply["rest_keys"]
    assert reply["file_only"] == ["server.limits.exempt_addresses"]
