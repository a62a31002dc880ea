"""Recordings (list, download with Range requests, delete) and the call log."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, Param, Raw, optional_param, param
from appliance.calls import CallsError
from appliance.signaling.client import ServerApi, SignalingError
from appliance.signaling.messages import Uid

RecordingName = Annotated[str, Field(pattern=m.RECORDING_NAME, max_length=200)]
Limit = Annotated[int, Field(ge=1, le=500)]
MATROSKA = "video/x-matroska"


class RecordsApi:
    def __init__(self, context: ApiContext) -> None:
        self._ctx = context
        self._server_api = ServerApi(context.server_url, trust=context.server_trust)

    async def close(self) -> None:
        await self._server_api.close()

    def endpoints(self) -> list[Endpoint]:
        name = (Param("name", RecordingName, description="a file name from the list"),)
        return [
            Endpoint(
                "GET",
                "/api/v1/recordings",
                self.list,
                "Recordings, newest first",
                "recordings",
                reply=m.RecordingList,
            ),
            Endpoint(
                "GET",
                "/api/v1/recordings/{name}",
                self.download,
                "Download a recording (Range requests work)",
                "recordings",
                params=name,
                raw=Raw(MATROSKA),
                errors={404: "No such recording", 416: "Range not satisfiable"},
            ),
            Endpoint(
                "DELETE",
                "/api/v1/recordings/{name}",
                self.delete,
                "Delete a recording",
                "recordings",
                params=name,
                status=204,
                errors={404: "No such recording", 409: "It is being recorded now"},
            ),
            Endpoint(
                "GET",
                "/api/v1/call-log",
                self.call_log,
                "This kit's calls, newest first (from the session server)",
                "calls",
                reply=m.CallList,
                params=(Param("limit", Limit, where="query", required=False),),
                errors={503: "The session server cannot be reached"},
            ),
            Endpoint(
                "GET",
                "/api/v1/kits",
                self.kits,
                "The kits the session server knows, online or not (who can be called)",
                "calls",
                reply=m.ContactList,
                errors={503: "The session server cannot be reached"},
            ),
        ]

    @property
    def _directory(self) -> Path:
        return self._ctx.calls.options.recordings_dir

    def _in_progress(self) -> Path | None:
        session = self._ctx.calls.call_snapshot()
        return session.recording if session is not None else None

    async def list(self, request: web.Request) -> m.RecordingList:
        entries = await asyncio.to_thread(_scan, self._directory)
        current = self._in_progress()
        return m.RecordingList(
            recordings=[
                m.Recording(
                    name=path.name,
                    size=size,
                    modified=modified,
                    recording=current is not None and path.name == current.name,
                    url=f"/api/v1/recordings/{path.name}",
                )
                for path, size, modified in entries
            ]
        )

    def _existing(self, request: web.Request) -> Path:
        name = param(request, "name", str)
        path = self._directory / name  # the pattern allows no separators or leading dots
        if not path.is_file():
            raise ApiError("not-found", f"no recording {name}", status=404)
        return path

    async def download(self, request: web.Request) -> web.StreamResponse:
        path = self._existing(request)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": MATROSKA,
                "Content-Disposition": f'attachment; filename="{path.name}"',
            },
        )

    async def delete(self, request: web.Request) -> None:
        path = self._existing(request)
        current = self._in_progress()
        if current is not None and current.name == path.name:
            raise CallsError("recording-in-progress", "stop the recording before deleting it")
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            raise ApiError("not-found", f"no recording {path.name}", status=404) from None

    async def call_log(self, request: web.Request) -> m.CallList:
        limit = optional_param(request, "limit", int) or 50
        try:
            calls = await self._server_api.calls(self._ctx.auth_token, limit)
        except OSError as err:
            raise ApiError("server-unreachable", f"the session server: {err}", status=503) from None
        return m.CallList(calls=[m.Call.model_validate(c.model_dump()) for c in calls])

    async def kits(self, request: web.Request) -> m.ContactList:
        try:
            users = await self._server_api.users(self._ctx.auth_token)
        except SignalingError as err:
            raise CallsError(err.code, err.message) from None
        except OSError as err:
            raise ApiError("server-unreachable", f"the session server: {err}", status=503) from None
        contacts = []
        for user in users:  # what the server says is checked, entry by entry
            try:
                contact = _ServerUser.model_validate(user)
            except ValidationError:
                continue
            if contact.uid != self._ctx.calls.uid:
                contacts.append(m.Contact(**contact.model_dump()))
        contacts.sort(key=lambda c: (not c.online, c.name.lower(), c.uid))
        return m.ContactList(kits=contacts)


class _ServerUser(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    uid: Uid
    name: str = Field(min_length=1, max_length=64)
    online: bool


def _scan(directory: Path) -> list[tuple[Path, int, float]]:
    try:
        entries = [
            (Path(entry.path), stat.st_size, stat.st_mtime)
            for entry in os.scandir(directory)
            if entry.name.endswith(".mkv")
            and not entry.name.startswith(".")
            and entry.is_file()
            and (stat := entry.stat())
        ]
    except FileNotFoundError:
        return []
    return sorted(entries, key=lambda e: e[2], reverse=True)
