"""Configuration: typed models shared by the TOML file, the CLI and the REST API.

Layers, later wins: package defaults, the config file (``/etc/callbox/callbox.toml`` or
``--config``), then REST overrides kept in the state directory (``overrides.toml``).
"""

from __future__ import annotations

import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.audio.settings import RoomAudioConfig
from appliance.rest_layer import ASOUND_CONF, RestLayerError, check_rest_layer, defined_pcms
from appliance.storage import atomic_write_text
from appliance.validation import problems
from hal.config import HalConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = Path("/etc/callbox/callbox.toml")
OVERRIDES_FILE = "overrides.toml"

_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


def split_hostport(value: str) -> tuple[str, int]:
    match = _HOSTPORT.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not an address to listen on: write host:port, such as "
            "127.0.0.1:8080 (this machine only), 0.0.0.0:8080 (every network) or "
            "[::]:8080 (IPv6)"
        )
    if not 0 <= int(match["port"]) <= 65535:
        raise ValueError(f"{value!r}: the port must be a number from 0 to 65535")
    return match["host"].strip("[]"), int(match["port"])


def _hostport(value: Any) -> Any:
    if isinstance(value, str):  # (a REST patch's copy of the field also lets null through)
        split_hostport(value)
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Checked by split_hostport, whose refusal says what to write (not a regular expression).
HostPort = Annotated[str, Field(max_length=300), AfterValidator(_hostport)]


class KitConfig(Section):
    uid: str = Field("room-a", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    name: str = Field("Room A", min_length=1, max_length=64)


class JanusServerConfig(Section):
    """One Janus (Debian's ``janus``) that hosts the VideoRooms of big calls."""

    # Its WebSocket API (janus.transport.websockets.jcfg), as the session server reaches it.
    url: str = Field(pattern=r"^wss?://[^\s/]+(/[^\s]*)?$")
    # The same API as the kits reach it, when that differs (e.g. the server uses loopback).
    public_url: str | None = Field(None, pattern=r"^wss?://[^\s/]+(/[^\s]*)?$")
    # Secrets are SecretStr: the REST API shows them masked.
    api_secret: SecretStr | None = Field(None, min_length=1, max_length=256)  # janus.jcfg
    # The VideoRoom plugin's admin_key (janus.plugin.videoroom.jcfg): set it, so only the
    # session server can create rooms.
    room_admin_key: SecretStr | None = Field(None, min_length=1, max_length=256)
    # Its admin API over HTTP (admin_http in janus.transport.http.jcfg) and admin_secret:
    # when set, a new room's placement counts the sessions Janus really serves (rooms of
    # other session servers too), not only the participants this server sent there.
    admin_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    admin_secret: SecretStr | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _admin_pair(self) -> JanusServerConfig:
        if (self.admin_url is None) != (self.admin_secret is None):
            raise ValueError("admin_url and admin_secret go together")
        return self


class TlsConfig(Section):
    """TLS on a listening socket (the session server, the REST API and pages)."""

    enabled: bool = False
    # PEM files. Without them a self-signed certificate is made on first start in
    # <state>/tls/ and kept; the screen shows its SHA-256 fingerprint.
    cert: str | None = Field(None, min_length=1)
    key: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


LOCAL_ADDRESSES = ("127.0.0.1", "::1")


class ApiLimits(Section):
    """What one host on the LAN may ask of the REST API's socket."""

    connections_per_address: int = Field(64, ge=1, le=100_000)
    header_timeout: float = Field(10.0, gt=0, le=300)
    # How long a WebSocket has to say hello before it is closed.
    hello_timeout: float = Field(10.0, gt=0, le=300)
    exempt_addresses: list[str] = Field(default_factory=lambda: list(LOCAL_ADDRESSES))


_FINGERPRINT = r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$"


class ServerLimits(Section):
    """What one client may ask of the session server (README, "Reliability")."""

    # Inbound signaling frames per connection: sustained rate and burst. Past them a frame
    # is refused (error "rate-limited"); a client that keeps on is disconnected.
    messages_per_second: float = Field(50.0, gt=0, le=100_000)
    message_burst: int = Field(200, ge=1, le=100_000)
    # Signed-in connections of one user; the oldest is closed when one more says hello.
    connections_per_user: int = Field(8, ge=1, le=1000)
    # Sessions one user takes part in at once (each connection joins at most one).
    sessions_per_user: int = Field(4, ge=1, le=1000)
    # Signed-in connections on the whole server, and sockets that have not said hello yet.
    connections: int = Field(5000, ge=1, le=1_000_000)
    unauthenticated: int = Field(1024, ge=1, le=100_000)
    # Sockets not signed in yet from one address, and how many of all such sockets only
    # addresses that have signed in before (kits reconnecting) may use: one host cannot
    # take the sign-in slots of others (at most half of unauthenticated is reserved).
    unauthenticated_per_address: int = Field(16, ge=1, le=100_000)
    unauthenticated_reserved: int = Field(128, ge=0, le=100_000)
    # TCP connections from one address (HTTP and WebSocket), and how long a connection has
    # to send its first request's headers (slowloris).
    connections_per_address: int = Field(64, ge=1, le=100_000)
    header_timeout: float = Field(10.0, gt=0, le=300)
    # How long a WebSocket has to say hello before it is closed.
    hello_timeout: float = Field(10.0, gt=0, le=300)
    # Addresses the per-address limits do not apply to: this machine (an embedded server's
    # own kit and guest proxy). Set in the config file only.
    exempt_addresses: list[str] = Field(default_factory=lambda: list(LOCAL_ADDRESSES))


class ServerConfig(Section):
    embedded: bool = True
    listen: HostPort = "127.0.0.1:8090"
    url: str = Field("http://127.0.0.1:8090", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    admin_key: str | None = Field(None, min_length=16, max_length=256)
    auth_token: str | None = Field(None, min_length=16, max_length=512)
    ring_timeout: float = Field(45.0, gt=0, le=600)
    token_ttl: int = Field(24 * 3600, ge=10, le=30 * 24 * 3600)
    # A participant whose connection drops keeps its place this long, so a kit that
    # reconnects carries on without the others noticing: long enough for a 10 s network
    # cut (the server may notice it 7.5 s in, the kit is back within 5 s of the network).
    reconnect_grace: float = Field(20.0, ge=0, le=120)
    # An accepted call whose session nobody joins within this long is ended, so its
    # parties are not left busy forever.
    join_timeout: float = Field(60.0, gt=0, le=3600)
    database: str | None = None  # SQLite file; default: <state>/server.db
    # How a session's media travels: "mesh" (peer to peer, right for two to four kits) or
    # "janus" (a VideoRoom per session on one of the Janus servers below: each kit sends its
    # video once whatever the room's size). With several Janus servers, each new session's
    # room goes to the least loaded one that answers, so the media tier scales out.
    media: Literal["mesh", "janus"] = "mesh"
    janus: list[JanusServerConfig] = Field(default_factory=list, max_length=64)
    limits: ServerLimits = ServerLimits()
    tls: TlsConfig = TlsConfig()  # the embedded or standalone server's listening socket
    # How this kit checks an https:// url: a CA file, or the SHA-256 fingerprint of the
    # server's certificate (a self-signed one); neither: the system's CAs.
    ca_file: str | None = Field(None, min_length=1)
    fingerprint: str | None = Field(None, pattern=_FINGERPRINT)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_hostport(value)
        return value

    @model_validator(mode="after")
    def _janus_servers(self) -> ServerConfig:
        if self.media == "janus" and not self.janus:
            raise ValueError('media = "janus" needs at least one [[server.janus]] server')
        return self

    @model_validator(mode="after")
    def _trust(self) -> ServerConfig:
        if self.ca_file is not None and self.fingerprint is not None:
            raise ValueError("ca_file and fingerprint: set one, not both")
        return self


class ApiConfig(Section):
    listen: HostPort = "127.0.0.1:8080"
    token: str | None = Field(None, min_length=16, max_length=256)
    tls: TlsConfig = TlsConfig()  # https:// for the REST API and the web pages
    limits: ApiLimits = ApiLimits()  # per-address connections, header deadline

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_hostport(value)
        return value


class CallsConfig(Section):
    auto_answer: bool = False
    # In a call, a short press of the end button only shows "hold to end"; holding it ends
    # the call. Guards a wall-mounted kit against hang-ups by a passing elbow.
    end_needs_hold: bool = False
    default_settings: dict[str, Any] = Field(default_factory=dict)  # builder names

    @field_validator("default_settings")
    @classmethod
    def _settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        from appliance.calls.settings import CallSettings

        CallSettings.from_dict(value)  # raises ValueError naming the setting
        return value


class PathsConfig(Section):
    state: str | None = None  # default: $STATE_DIRECTORY, else ~/.local/state/callbox
    recordings: str | None = None  # default: <state>/recordings


class DiscoveryConfig(Section):
    """mDNS on the LAN (docs/DISCOVERY.md): the session server (embedded or standalone)
    and the kit announce themselves, and a kit without ``server.url`` looks for a server.
    Off by default; set in the config file only."""

    enabled: bool = False
    # IPv4 addresses of the interfaces to speak mDNS on; empty: every interface.
    interfaces: list[str] = Field(default_factory=list, max_length=16)
    # The IPv4 address to announce; default: the listen address, else the machine's own.
    address: str | None = Field(None, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
    wait: float = Field(10.0, gt=0, le=300)  # seconds a kit looks for a server at start
    # Seconds a kit waits at start for the server's operator to approve it.
    approval_wait: float = Field(300.0, gt=0, le=24 * 3600)


class Config(Section):
    kit: KitConfig = KitConfig()
    server: ServerConfig = ServerConfig()
    api: ApiConfig = ApiConfig()
    hal: HalConfig = HalConfig()
    calls: CallsConfig = CallsConfig()
    paths: PathsConfig = PathsConfig()
    audio: RoomAudioConfig = RoomAudioConfig()  # processing per route, echo delay, ringtones
    discovery: DiscoveryConfig = DiscoveryConfig()

    @property
    def state_dir(self) -> Path:
        if self.paths.state:
            return Path(self.paths.state)
        if systemd_state := os.environ.get("STATE_DIRECTORY"):
            return Path(systemd_state.split(":")[0])
        base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        return Path(base) / "callbox"

    @property
    def recordings_dir(self) -> Path:
        if self.paths.recordings:
            return Path(self.paths.recordings)
        return self.state_dir / "recordings"

    @property
    def database_path(self) -> Path:
        return Path(self.server.database) if self.server.database else self.state_dir / "server.db"


class ConfigError(ValueError):
    """A config file or change that does not validate; ``field`` names the culprit."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}")
        self.field = field
        self.message = message


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``base`` (tables merge, values replace)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(data: dict[str, Any], source: str = "") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        ((field, message),) = problems(err, default="config")
        raise ConfigError(field, message, source) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError("file", f"not valid TOML: {err}", str(path)) from None
    except OSError as err:
        raise ConfigError("file", f"cannot be read: {err.strerror}", str(path)) from None


@dataclass(frozen=True)
class Loaded:
    """The effective config, the file layer below the REST overrides, and why the
    overrides were left out (None when they loaded, or there were none)."""

    config: Config
    file_layer: dict[str, Any]
    overrides_problem: str | None = None


def load(path: Path | None = None) -> tuple[Config, dict[str, Any]]:
    """The effective config and the file layer it came from (without overrides)."""
    loaded = load_layers(path)
    return loaded.config, loaded.file_layer


def load_layers(path: Path | None = None, *, asound_conf: Path = ASOUND_CONF) -> Loaded:
    """The config file and, over it, the REST overrides; overrides that do not load are
    set aside (the daemon starts without them and says so) rather than stopping it."""
    file_path = path or DEFAULT_CONFIG_FILE
    if path is not None and not path.exists():
        raise ConfigError("file", "no such file", str(path))
    file_data = read_toml(file_path)
    config = validate(file_data, str(file_path))
    overrides, problem = read_overrides(config.state_dir, file_data, asound_conf=asound_conf)
    if overrides:
        config = validate(merge(file_data, overrides))
    return Loaded(config, file_data, problem)


def read_overrides(
    state_dir: Path, file_layer: dict[str, Any], *, asound_conf: Path = ASOUND_CONF
) -> tuple[dict[str, Any], str | None]:
    """The REST layer, checked: TOML, keys the REST API may set, device settings that
    name devices, and a valid config over ``file_layer``. A file that fails is renamed
    aside (``overrides.toml.rejected-<time>``) and ``({}, why)`` returned."""
    path = state_dir / OVERRIDES_FILE
    try:
        overrides = read_toml(path)
        if overrides:
            check_rest_layer(overrides, defined_pcms(asound_conf))
            validate(merge(file_layer, overrides), str(path))
    except (ConfigError, RestLayerError) as err:
        aside = path.with_name(f"{OVERRIDES_FILE}.rejected-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            path.rename(aside)
            kept = f"kept as {aside.name}"
        except OSError as exc:
            kept = f"could not be set aside: {exc.strerror}"
        problem = f"REST config overrides ignored: {err} ({kept})"
        log.error("%s; running on the config file alone", problem)
        return {}, problem
    return overrides, None


def to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML, read back and compared before anyone writes it: what cannot make
    the round trip (a type TOML lacks) is a ConfigError, never a file that fails to load."""
    plain = _without_none(data)
    try:
        text = tomli_w.dumps(plain)
        same = tomllib.loads(text) == plain
    except (TypeError, ValueError) as err:
        raise ConfigError("config", f"cannot be written as TOML: {err}") from None
    if not same:
        raise ConfigError("config", "does not read back as written in TOML")
    return text


def _without_none(value: Any) -> Any:
    """TOML has no null: a None value is an absent key."""
    if isinstance(value, dict):
        return {str(k): _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def save_overrides(state_dir: Path, overrides: dict[str, Any]) -> None:
    atomic_write_text(state_dir / OVERRIDES_FILE, to_toml(overrides), mode=0o600)
