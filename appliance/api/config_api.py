"""``GET``/``PATCH /api/v1/config``: the effective config and the REST override layer.

A PATCH is a JSON merge patch (RFC 7396) of the override layer: objects merge, values
replace, ``null`` drops an override (the config file's value or the default returns). The
result is validated as a whole with the same models as the config file; a refusal names
the field and leaves ``overrides.toml`` byte-identical. Only the keys of
``appliance.rest_layer.REST_KEYS`` may be set, device settings only to values that name a
device; identity, paths, secrets and where secrets are sent live in the config file only.
A new ``api.listen`` must be an address this machine can listen on.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import socket
from dataclasses import replace
from enum import Enum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, body_of
from appliance.config import (
    Config,
    ConfigError,
    merge,
    read_overrides,
    save_overrides,
    split_hostport,
    validate,
)
from appliance.errors import storage_error
from appliance.rest_layer import (
    FILE_ONLY,
    REST_KEYS,
    RestLayerError,
    check_rest_layer,
    defined_pcms,
    rest_may_set_within,
)
from hal.camera.base import VideoFormat

# What takes effect without a restart: now, or when the next call opens the devices.
APPLIES_NOW = frozenset({"calls.auto_answer"})
_NO_SECRETS = {"admin_key": None, "auth_token": None}
APPLIES_NEXT_CALL = frozenset(
    {"calls.default_settings", "hal.camera.width", "hal.camera.height", "hal.camera.fps"}
)


def _patch_model(model: type[BaseModel], prefix: str = "") -> type[BaseModel]:
    """``model`` with every field optional and the read-only ones left out, so the schema
    of a PATCH body says exactly what may be sent."""
    specs: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        if not rest_may_set_within(dotted):
            continue  # the config file's only (appliance.rest_layer.REST_KEYS)
        annotation: Any = info.annotation
        new_info = copy.copy(info)
        new_info.default = None
        new_info.default_factory = None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _patch_model(annotation, dotted + ".")
        specs[name] = (annotation | None, new_info)
    patch: type[BaseModel] = create_model(
        f"{model.__name__}Patch",
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__=f"A merge patch of [{prefix.rstrip('.') or 'config'}]: null drops an override.",
        **specs,
    )
    return patch


ConfigPatch = _patch_model(Config)


class ConfigEnvelope(m.Reply):
    """The effective config and its pending changes."""

    config: Config = Field(description="in effect once every pending change applies")
    overrides: dict[str, Any] = Field(description="what PATCH has set (overrides.toml)")
    pending: list[m.ConfigChange] = Field(
        description="saved changes that wait for a restart of the daemon"
    )
    changes: list[m.ConfigChange] = Field(
        default_factory=list,
        description="what this PATCH changed, and when each change takes effect",
    )
    rest_keys: list[str] = Field(
        default_factory=lambda: sorted(REST_KEYS),
        description="the keys (and tables) PATCH may set; everything else is the config "
        "file's alone",
    )
    file_only: list[str] = Field(
        default_factory=lambda: sorted(FILE_ONLY),
        description="keys inside rest_keys that only the config file may set",
    )


class ConfigApi:
    def __init__(self, context: ApiContext) -> None:
        self._ctx = context
        self._lock = asyncio.Lock()
        self._running = context.config  # what the daemon runs with, after live changes

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                "/api/v1/config",
                self.get,
                "The effective config",
                "config",
                reply=ConfigEnvelope,
            ),
            Endpoint(
                "PATCH",
                "/api/v1/config",
                self.patch,
                "Change the config",
                "config",
                body=ConfigPatch,
                reply=ConfigEnvelope,
                description=__doc__ or "",
            ),
        ]

    async def get(self, request: web.Request) -> ConfigEnvelope:
        overrides = await self._read()
        return self._envelope(self._effective(overrides), overrides)

    async def _read(self) -> dict[str, Any]:
        """The REST layer as it is on disk (set aside if it no longer loads)."""
        overrides, _ = await asyncio.to_thread(
            read_overrides,
            self._ctx.config.state_dir,
            self._ctx.base_layer,
            asound_conf=self._ctx.asound_conf,
        )
        return overrides

    async def patch(self, request: web.Request) -> ConfigEnvelope:
        # Validated against ConfigPatch; explicit nulls are kept, omitted fields are not.
        raw = _plain(body_of(request, ConfigPatch).model_dump(exclude_unset=True))
        async with self._lock:
            old = await self._read()
            overrides = merge_patch(old, raw)
            try:
                defined = await asyncio.to_thread(defined_pcms, self._ctx.asound_conf)
                check_rest_layer(overrides, defined)
                config = self._effective(overrides)
            except (ConfigError, RestLayerError) as err:
                raise ApiError(
                    "invalid-field", f"{err.field}: {err.message}", status=422, field=err.field
                ) from None
            before = self._effective(old).model_dump()
            if config.api.listen != self._effective(old).api.listen:
                await self._check_listen(config.api.listen)
            if overrides != old:
                try:
                    await asyncio.to_thread(save_overrides, self._ctx.config.state_dir, overrides)
                except ConfigError as err:
                    raise ApiError("invalid-field", str(err), status=422, field=err.field) from None
                except OSError as err:
                    raise storage_error(err) from None
            self._apply(config)
        envelope = self._envelope(config, overrides)
        envelope.changes = [
            m.ConfigChange(field=path, applies=applies(path))
            for path in _differences(before, config.model_dump())
        ]
        return envelope

    async def _check_listen(self, listen: str) -> None:
        """Refuses an ``api.listen`` this machine cannot listen on (a port another program
        holds, an address it does not have); the ports this daemon holds itself are free
        once it restarts."""
        host, port = split_hostport(listen)
        if port == 0 or port in self._ctx.own_ports:
            return
        problem = await asyncio.to_thread(bind_problem, host, port)
        if problem is not None:
            raise ApiError(
                "invalid-field",
                f"api.listen: cannot listen on {listen}: {problem}",
                status=422,
                field="api.listen",
            )

    def _effective(self, overrides: dict[str, Any]) -> Config:
        return validate(merge(self._ctx.base_layer, overrides), "overrides")

    def _apply(self, config: Config) -> None:
        """Put what can change without a restart into effect."""
        kit, calls = self._ctx.kit, self._ctx.calls
        kit.auto_answer = config.calls.auto_answer
        kit.set_default_settings(config.calls.default_settings)
        camera = config.hal.camera
        calls.options = replace(
            calls.options, video_format=VideoFormat(camera.width, camera.height, camera.fps)
        )
        running = self._running.model_dump()
        wanted = config.model_dump()
        live = APPLIES_NOW | APPLIES_NEXT_CALL
        for path in live:
            running = _set(running, path, _get(wanted, path))
        self._running = Config.model_validate(running)

    def _envelope(self, config: Config, overrides: dict[str, Any]) -> ConfigEnvelope:
        pending = [
            m.ConfigChange(field=path, applies=applies(path))
            for path in _differences(self._running.model_dump(), config.model_dump())
            if applies(path) == "restart"
        ]
        shown = config.model_copy(
            update={
                "api": config.api.model_copy(update={"token": None}),
                "server": config.server.model_copy(update={"admin_key": None, "auth_token": None}),
            }
        )
        visible = merge_patch(overrides, {"api": {"token": None}, "server": _NO_SECRETS})
        visible = _mask_like(visible, shown.model_dump(mode="json"))
        return ConfigEnvelope(config=shown, overrides=visible, pending=pending)


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396: objects merge, null removes, other values replace; empty tables go."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            current = out.get(key)
            merged = merge_patch(current if isinstance(current, dict) else {}, value)
            if merged:
                out[key] = merged
            else:
                out.pop(key, None)
        else:
            out[key] = _without_nulls(value)
    return out


def _plain(value: Any) -> Any:
    """A patch as the TOML file keeps it: secrets revealed (pydantic would mask them)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _mask_like(overrides: Any, shown: Any) -> Any:
    """The overrides with every value masked where the effective config masks it."""
    if isinstance(overrides, dict) and isinstance(shown, dict):
        return {k: _mask_like(v, shown.get(k)) for k, v in overrides.items()}
    if isinstance(overrides, list) and isinstance(shown, list):
        return [_mask_like(o, s) for o, s in zip(overrides, shown, strict=False)]
    if isinstance(shown, str) and set(shown) == {"*"}:
        return shown
    return overrides


def _without_nulls(value: Any) -> Any:
    """TOML has no null: inside a list of tables, a null field is an absent one."""
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def applies(path: str) -> m.Applies:
    if path in APPLIES_NOW:
        return "now"
    if path in APPLIES_NEXT_CALL or path.startswith("calls.default_settings."):
        return "next-call"
    return "restart"


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict) and prefix != "calls.default_settings.":
        paths: list[str] = []
        for key in sorted(set(old) | set(new)):
            paths += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return paths
    return [] if old == new else [prefix.rstrip(".")]


def _get(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    out = dict(data)
    out[head] = _set(out[head], rest, value) if rest else value
    return out


def bind_problem(host: str, port: int) -> str | None:
    """Why a listening socket on ``host:port`` cannot be made now, or None if it can."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as err:
        return f"unknown address ({err})"
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return "the port is in use"
            return err.strerror or str(err)
    return None
