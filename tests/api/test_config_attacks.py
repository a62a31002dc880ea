"""What a holder of the API token on the LAN can do to a running kit through
``PATCH /api/v1/config``: no commands for alsa-lib to run, no files to overwrite, no
secrets sent elsewhere, no config that bricks the kit, no address it cannot listen on."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.config import OVERRIDES_FILE, load_layers, read_toml, to_toml, validate
from appliance.daemon import Daemon
from tests.api.daemon import TOKEN, Api, api_client, daemon_config

ATTACKS = [
    "file:FILE='|touch /tmp/callbox-pwned',FORMAT=raw",
    "file:FILE=/etc/passwd",
    "file:'|id'",
    "plug:'file:FILE=/tmp/x'",
    "pipe",
    "hw:0,0 ",
    "default\n",
    "'|sh'",
]


@contextlib.asynccontextmanager
async def kit_from_disk(
    tmp: Path, file_layer: dict[str, Any], **kwargs: Any
) -> AsyncIterator[Daemon]:
    """A daemon started as ``callbox run`` starts it: the config file, then the REST
    overrides in its state directory (set aside, with a warning, if they do not load)."""
    config_file = tmp / "callbox.toml"
    config_file.write_text(to_toml(file_layer))
    loaded = load_layers(config_file)
    daemon = Daemon(
        loaded.config,
        base_layer=loaded.file_layer,
        config_problem=loaded.overrides_problem,
        **kwargs,
    )
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


def overrides(kit: Daemon) -> Path:
    return kit.config.state_dir / OVERRIDES_FILE


@pytest.mark.parametrize("device", ["speaker", "capture", "earpiece", "headphones", "bluetooth"])
@pytest.mark.parametrize("value", ATTACKS)
async def test_alsa_plugin_strings_are_refused(
    kit: Daemon, api: Api, device: str, value: str
) -> None:
    await api.ok("PATCH", "/config", {"kit": {"name": "Before"}})
    before = overrides(kit).read_bytes()
    status, body = await api.call("PATCH", "/config", {"hal": {"audio": {device: value}}})
    assert status == 422, body
    assert body["error"]["field"] == f"hal.audio.{device}"
    assert overrides(kit).read_bytes() == before


async def test_the_alsa_names_a_kit_uses_are_accepted(tmp_path: Path) -> None:
    asound = tmp_path / "asound.conf"
    asound.write_text('pcm.roommic {\n  type dsnoop\n}\npcm.!"speakers" { type plug }\n')
    data = daemon_config(tmp_path)
    daemon = Daemon(validate(data), base_layer=data, asound_conf=asound)
    await daemon.start()
    try:
        async with api_client(daemon) as api:
            for speaker, capture in [
                ("default", "sysdefault"),
                ("hw:1,0", "plughw:CARD=Device,DEV=0"),
                ("plughw:2", "sysdefault:CARD=Mic"),
                ("speakers", "roommic"),
            ]:
                audio = {"speaker": speaker, "capture": capture}
                audio["bluetooth"] = "bluealsa:DEV=00:11:22:AA:BB:CC,PROFILE=sco"
                body = await api.ok("PATCH", "/config", {"hal": {"audio": audio}})
                assert body["config"]["hal"]["audio"]["speaker"] == speaker
            status, body = await api.call("PATCH", "/config", {"hal": {"audio": {"capture": "x"}}})
            assert status == 422 and body["error"]["field"] == "hal.audio.capture"
    finally:
        await daemon.stop()


async def test_the_config_file_may_name_any_pcm(tmp_path: Path) -> None:
    """The file is the operator's: its values are not the REST layer's to refuse."""
    data = daemon_config(tmp_path, hal={"audio": {"speaker": "plug:'dmix:CARD=0'"}})
    async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
        body = await api.ok("PATCH", "/config", {"kit": {"name": "Lobby"}})
        assert body["config"]["hal"]["audio"]["speaker"] == "plug:'dmix:CARD=0'"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"hal": {"display": {"framebuffer": "/tmp/victim"}}}, "hal.display.framebuffer"),
        ({"hal": {"display": {"framebuffer": "/dev/shm/victim"}}}, "hal.display.framebuffer"),
        ({"hal": {"display": {"framebuffer": "/dev/fb0/../sda"}}}, "hal.display.framebuffer"),
        ({"hal": {"input": {"devices": ["/etc/shadow"]}}}, "hal.input.devices"),
        ({"hal": {"input": {"devices": ["/dev/input/../sda"]}}}, "hal.input.devices"),
        ({"hal": {"camera": {"devices": ["/home/pi/x"]}}}, "hal.camera.devices"),
    ],
)
async def test_device_paths_outside_dev_are_refused(
    tmp_path: Path, kit: Daemon, api: Api, patch: dict[str, Any], field: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    status, body = await api.call("PATCH", "/config", patch)
    assert status == 422, body
    assert body["error"]["field"] == field
    assert not overrides(kit).exists()
    assert victim.read_bytes() == b"precious"


async def test_device_paths_under_dev_are_accepted(api: Api) -> None:
    hal = {
        "display": {"framebuffer": "/dev/fb1"},
        "input": {"devices": ["/dev/input/event3", "FT5406 memory based driver"]},
        "camera": {"devices": ["csi0", "usb-046d:0825"]},
    }
    body = await api.ok("PATCH", "/config", {"hal": hal})
    assert body["config"]["hal"]["display"]["framebuffer"] == "/dev/fb1"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"server": {"embedded": False, "url": "http://attacker.example:80"}}, "server.embedded"),
        ({"server": {"url": "http://attacker.example:80"}}, "server.url"),
        ({"server": {"fingerprint": "ab" * 32}}, "server.fingerprint"),
        ({"server": {"ca_file": "/tmp/ca.pem"}}, "server.ca_file"),
        ({"server": {"tls": {"enabled": False}}}, "server.tls"),
        ({"server": {"listen": "0.0.0.0:8090"}}, "server.listen"),
        ({"server": {"janus": [{"url": "ws://attacker.example:8188"}]}}, "server.janus"),
        ({"server": {"media": "janus"}}, "server.media"),
        ({"api": {"tls": {"enabled": False}}}, "api.tls"),
        ({"paths": {"state": "/tmp"}}, "paths"),
    ],
)
async def test_where_secrets_go_is_the_config_files_only(
    kit: Daemon, api: Api, patch: dict[str, Any], field: str
) -> None:
    status, body = await api.call("PATCH", "/config", patch)
    assert status == 422, body
    assert body["error"]["field"] == field
    assert not overrides(kit).exists()
    config = (await api.ok("GET", "/config"))["config"]
    assert config["server"]["embedded"] is True
    assert config["server"]["url"] == "http://127.0.0.1:8090"


async def test_a_control_character_does_not_brick_the_kit(tmp_path: Path) -> None:
    data = daemon_config(tmp_path)
    async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
        name = 'Room\u0003D "quoted" \\ \u007f \u2028 é'
        body = await api.ok("PATCH", "/config", {"kit": {"name": name}})
        assert body["config"]["kit"]["name"] == name
        assert (await api.ok("GET", "/config"))["config"]["kit"]["name"] == name
        await api.ok("PATCH", "/config", {"calls": {"auto_answer": True}})
        assert read_toml(overrides(kit))["kit"]["name"] == name
    # and the next start runs with it
    async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
        assert kit.config.kit.name == name
        assert (await api.ok("GET", "/health"))["warnings"] == []


async def test_an_overrides_file_that_does_not_load_is_set_aside_loudly(tmp_path: Path) -> None:
    data = daemon_config(tmp_path)
    state = tmp_path / "room-a"
    state.mkdir(parents=True)
    bad = b'[kit]\nname = "Room\x03D"\n'  # what the old hand-written writer produced
    (state / OVERRIDES_FILE).write_bytes(bad)
    async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
        health = await api.ok("GET", "/health")
        assert len(health["warnings"]) == 1
        assert "overrides" in health["warnings"][0]
        assert kit.compositor is not None and kit.compositor._home.warning
        assert not (state / OVERRIDES_FILE).exists()
        (aside,) = state.glob(f"{OVERRIDES_FILE}.rejected-*")
        assert aside.read_bytes() == bad
        assert (await api.ok("GET", "/config"))["config"]["kit"]["name"] == "Room A"
        await api.ok("PATCH", "/config", {"kit": {"name": "Fixed"}})


async def test_an_overrides_file_with_file_only_keys_is_set_aside(tmp_path: Path) -> None:
    """A REST layer that says where secrets go (written by an older version, or planted)
    is not obeyed."""
    data = daemon_config(tmp_path)
    state = tmp_path / "room-a"
    state.mkdir(parents=True)
    (state / OVERRIDES_FILE).write_text(
        "[hal.audio]\nspeaker = \"file:FILE='|id',FORMAT=raw\"\n"
        '[server]\nembedded = false\nurl = "http://attacker.example:80"\n'
    )
    loaded = load_layers_of(tmp_path, data)
    assert loaded.overrides_problem is not None
    assert loaded.config.server.embedded is True
    assert loaded.config.hal.audio.speaker == "default"


def load_layers_of(tmp: Path, data: dict[str, Any]) -> Any:
    config_file = tmp / "callbox.toml"
    config_file.write_text(to_toml(data))
    return load_layers(config_file)


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def test_a_listen_address_in_use_is_refused(kit: Daemon, api: Api) -> None:
    with _listening_socket() as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        status, body = await api.call("PATCH", "/config", {"api": {"listen": busy}})
        assert status == 422, body
        assert body["error"]["field"] == "api.listen"
        assert "in use" in body["error"]["message"]
        assert not overrides(kit).exists()
    status, body = await api.call("PATCH", "/config", {"api": {"listen": "192.0.2.1:8080"}})
    assert status == 422 and body["error"]["field"] == "api.listen"
    # its own port (free again once it restarts) and a free one are fine
    assert kit.api is not None
    own = kit.api.url.rsplit(":", 1)[1]
    await api.ok("PATCH", "/config", {"api": {"listen": f"0.0.0.0:{own}"}})


async def test_a_start_that_cannot_bind_the_rest_address_falls_back_to_the_files(
    tmp_path: Path,
) -> None:
    data = daemon_config(tmp_path)
    state = tmp_path / "room-a"
    state.mkdir(parents=True)
    with _listening_socket() as taken:
        port = taken.getsockname()[1]
        # accepted while the port was free; another program took it before the restart
        (state / OVERRIDES_FILE).write_text(f'[api]\nlisten = "127.0.0.1:{port}"\n')
        async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
            assert kit.api is not None and not kit.api.url.endswith(f":{port}")
            health = await api.ok("GET", "/health")
            assert any(f"127.0.0.1:{port}" in w for w in health["warnings"])


async def test_secrets_in_the_file_are_never_shown(tmp_path: Path) -> None:
    secret = "s3cret-" * 3
    data = daemon_config(
        tmp_path, server={"janus": [{"url": "ws://127.0.0.1:8188", "api_secret": secret}]}
    )
    async with kit_from_disk(tmp_path, data) as kit, api_client(kit) as api:
        body = await api.ok("GET", "/config")
        assert secret not in str(body)
        assert body["config"]["server"]["janus"][0]["api_secret"] == "**********"


async def test_the_subprotocol_token_opens_only_websockets(kit: Daemon) -> None:
    assert kit.api is not None
    headers = {"Sec-WebSocket-Protocol": f"callbox, bearer.{TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(kit.api.url + "/api/v1/config", headers=headers) as response:
            assert response.status == 401
        async with http.ws_connect(
            kit.api.url + "/api/v1/events", protocols=("callbox", f"bearer.{TOKEN}")
        ) as ws:
            assert ws.protocol == "callbox"
