"""Kits asking to join this kit's session server (appliance.server.joins): the operator
sees who asks, and approves or rejects each, from the control page."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from appliance.api import models as m
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, Param, param
from appliance.server import SessionServer
from appliance.server.joins import JoinRequest

RequestId = Annotated[int, Field(ge=1, le=2**31)]


class JoinsApi:
    def __init__(self, context: ApiContext) -> None:
        self._ctx = context

    def endpoints(self) -> list[Endpoint]:
        request_id = (Param("id", RequestId, description="a request's id from the list"),)
        decided = {
            404: "No such request, or this kit hosts no session server",
            409: "Already approved or rejected",
        }
        return [
            Endpoint(
                "GET",
                "/api/v1/join-requests",
                self.pending,
                "Kits asking to join this kit's session server, oldest first",
                "kit",
                reply=m.JoinRequestList,
            ),
            Endpoint(
                "POST",
                "/api/v1/join-requests/{id}/approve",
                self.approve,
                "Let a kit in: it becomes a user and receives its auth token",
                "kit",
                params=request_id,
                reply=m.JoinRequest,
                errors=decided,
            ),
            Endpoint(
                "POST",
                "/api/v1/join-requests/{id}/reject",
                self.reject,
                "Turn a kit away",
                "kit",
                params=request_id,
                reply=m.JoinRequest,
                errors=decided,
            ),
        ]

    def _server(self) -> SessionServer:
        server = self._ctx.session_server
        if server is None:
            raise ApiError(
                "no-session-server",
                "this kit does not host its session server: kits join where it runs",
                status=404,
            )
        return server

    async def pending(self, request: web.Request) -> m.JoinRequestList:
        server = self._ctx.session_server
        if server is None:
            return m.JoinRequestList(hosted=False, requests=[])
        return m.JoinRequestList(hosted=True, requests=[_view(r) for r in server.joins.pending()])

    async def approve(self, request: web.Request) -> m.JoinRequest:
        return _view(await self._server().approve_join(param(request, "id", int)))

    async def reject(self, request: web.Request) -> m.JoinRequest:
        return _view(self._server().reject_join(param(request, "id", int)))


def _view(request: JoinRequest) -> m.JoinRequest:
    return m.JoinRequest.model_validate(request.public())
