"""The session, the in-call actions, the ringing flow and the events WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import WSMsgType, web
from pydantic import BaseModel

from appliance import __version__
from appliance.api import models as m
from appliance.api.auth import WEBSOCKET_PROTOCOL
from appliance.api.context import ApiContext
from appliance.api.routing import ApiError, Endpoint, Param, body_of, param
from appliance.calls import CallsError, SessionState
from appliance.calls.errors import no_active_session
from appliance.events import Call, CallEvent, to_jsonable
from appliance.jsonwire import send_json
from appliance.selftest import Report
from appliance.signaling.messages import SessionId

log = logging.getLogger(__name__)

HEARTBEAT = 15.0
NOT_IDLE = "Not possible now: no active session (error.code no-active-session), or another"


class SessionApi:
    def __init__(self, context: ApiContext, closing: asyncio.Event) -> None:
        self._ctx = context
        self._closing = closing
        self._sockets: set[web.WebSocketResponse] = set()

    def endpoints(self) -> list[Endpoint]:
        action = {409: NOT_IDLE}
        return [
            Endpoint("GET", "/api/v1/health", self.health, "Liveness and hardware", "kit",
                     reply=m.Health, auth=False),
            Endpoint("POST", "/api/v1/selftest", self.run_selftest,
                     "Run the hardware self-test (a few seconds); the report", "kit",
                     reply=m.SelfTestView,
                     errors={404: "No self-test on this kit",
                             409: "In a call, or a self-test is running (selftest-busy)"}),
            Endpoint("GET", "/api/v1/session", self.get_session, "The session now", "session",
                     reply=m.SessionView),
            Endpoint("PUT", "/api/v1/session", self.start_session, "Start or join a session",
                     "session", body=m.StartSession, reply=m.SessionView, status=201,
                     errors={409: "A session is already active, or the server refused"}),
            Endpoint("DELETE", "/api/v1/session", self.end_session,
                     "End the session (or the ringing call)", "session", reply=m.SessionView,
                     errors=action),
            self._action("mute-audio", "Mute or unmute the microphone", self.mute, m.MuteAudio),
            self._action("pause-video", "Pause or resume the camera", self.pause, m.PauseVideo),
            self._action("switch-camera", "Use the next camera", self.switch_camera),
            self._action("audio-mode", "Play the call on another route", self.audio_mode,
                         m.SetAudioMode),
            self._action("pip", "Enter or leave picture-in-picture", self.pip, m.SetPip),
            self._action("switch-to-video", "Upgrade an audio call to video",
                         self.switch_to_video),
            self._action("recording", "Start or stop recording", self.recording,
                         m.SetRecording),
            Endpoint("GET", "/api/v1/calls", self.ringing_calls, "The ringing call, if any",
                     "calls", reply=m.CallList),
            Endpoint("POST", "/api/v1/calls", self.place_call, "Call another kit", "calls",
                     body=m.PlaceCall, reply=m.Call, status=201,
                     errors={409: "Busy, unknown receiver, or the server refused"}),
            *(
                Endpoint("POST", f"/api/v1/calls/{{session_id}}/{verb}", handler,
                         f"{verb.capitalize()} a ringing call", "calls", reply=m.Call,
                         params=(Param("session_id", SessionId),),
                         errors={409: "No such ringing call"})
                for verb, handler in (
                    ("accept", self.accept), ("reject", self.reject), ("cancel", self.cancel)
                )
            ),
            Endpoint("GET", "/api/v1/events", self.events, "Every call event (WebSocket)",
                     "events", websocket=True,
                     description="Frames are EventMessage JSON. Browsers, which cannot set "
                     "headers on a WebSocket, offer the subprotocols `callbox` and "
                     "`bearer.<token>` instead of the Authorization header."),
        ]  # fmt: skip

    def _action(
        self,
        name: str,
        summary: str,
        handler: Callable[[web.Request], Awaitable[m.SessionView]],
        body: type[m.Body] | None = None,
    ) -> Endpoint:
        return Endpoint(
            "POST",
            f"/api/v1/session/{name}",
            handler,
            summary,
            "session",
            body=body,
            reply=m.SessionView,
            errors={409: NOT_IDLE},
        )

    # --- health and state ----------------------------------------------------------------

    async def health(self, request: web.Request) -> m.Health:
        ctx = self._ctx
        return m.Health(
            ok=True,
            version=__version__,
            kit=m.KitInfo(uid=ctx.config.kit.uid, name=ctx.config.kit.name),
            state=ctx.calls.state.value,
            hardware=hardware_states(ctx),
            session_server=m.SessionServerInfo(
                url=ctx.server_url,
                embedded=ctx.session_server is not None,
                connected=ctx.calls.connected,
            ),
            warnings=list(ctx.warnings),
            selftest=selftest_view(ctx.selftest.last if ctx.selftest else None),
        )

    async def run_selftest(self, request: web.Request) -> m.SelfTestView:
        selftest = self._ctx.selftest
        if selftest is None:
            raise ApiError("no-selftest", "this kit has no self-test", status=404)
        view = selftest_view(await selftest.run())
        assert view is not None
        return view

    def view(self) -> m.SessionView:
        return m.SessionView.model_validate(self._ctx.calls.snapshot())

    async def get_session(self, request: web.Request) -> m.SessionView:
        return self.view()

    async def start_session(self, request: web.Request) -> m.SessionView:
        body = body_of(request, m.StartSession)
        settings = cast(BaseModel, body.settings).model_dump(exclude_unset=True)
        try:
            await self._ctx.kit.start_session(body.session_id, settings)
        except ValueError as err:  # CallSettings names the setting
            name = str(err).partition(":")[0]
            raise ApiError(
                "invalid-field", f"settings.{err}", status=422, field=f"settings.{name}"
            ) from None
        return self.view()

    async def end_session(self, request: web.Request) -> m.SessionView:
        calls = self._ctx.calls
        if calls.state == SessionState.IDLE:
            raise no_active_session()
        await self._ctx.kit.end()
        return self.view()

    # --- in-call actions -----------------------------------------------------------------

    async def mute(self, request: web.Request) -> m.SessionView:
        await self._ctx.calls.mute_audio(body_of(request, m.MuteAudio).muted)
        return self.view()

    async def pause(self, request: web.Request) -> m.SessionView:
        await self._ctx.calls.pause_video(body_of(request, m.PauseVideo).paused)
        return self.view()

    async def switch_camera(self, request: web.Request) -> m.SessionView:
        await self._ctx.calls.switch_camera()
        return self.view()

    async def audio_mode(self, request: web.Request) -> m.SessionView:
        await self._ctx.calls.set_audio_mode(body_of(request, m.SetAudioMode).mode)
        return self.view()

    async def pip(self, request: web.Request) -> m.SessionView:
        calls = self._ctx.calls
        if body_of(request, m.SetPip).enabled:
            await calls.enter_pip_mode()
        else:
            await calls.exit_pip_mode()
        return self.view()

    async def switch_to_video(self, request: web.Request) -> m.SessionView:
        await self._ctx.calls.switch_to_video_call()
        return self.view()

    async def recording(self, request: web.Request) -> m.SessionView:
        calls = self._ctx.calls
        if body_of(request, m.SetRecording).recording:
            await calls.start_recording()
        else:
            await calls.stop_recording()
        return self.view()

    # --- ringing -------------------------------------------------------------------------

    async def ringing_calls(self, request: web.Request) -> m.CallList:
        call = self._ctx.calls.active_call
        ringing = [call_model(call)] if call is not None and call.status == "initiated" else []
        return m.CallList(calls=ringing)

    async def place_call(self, request: web.Request) -> m.Call:
        body = body_of(request, m.PlaceCall)
        if body.receiver == self._ctx.calls.uid:
            raise ApiError(
                "invalid-field", "receiver: a kit cannot call itself", status=422, field="receiver"
            )
        return call_model(await self._ctx.kit.place_call(body.receiver, body.type))

    async def accept(self, request: web.Request) -> m.Call:
        return call_model(await self._ctx.kit.answer(param(request, "session_id", str)))

    async def reject(self, request: web.Request) -> m.Call:
        session_id = param(request, "session_id", str)
        self._ringing(session_id, incoming=True)
        return call_model(await self._ctx.calls.reject_call(session_id))

    async def cancel(self, request: web.Request) -> m.Call:
        session_id = param(request, "session_id", str)
        self._ringing(session_id, incoming=False)
        return call_model(await self._ctx.calls.cancel_call(session_id))

    def _ringing(self, session_id: str, *, incoming: bool) -> None:
        calls = self._ctx.calls
        call = calls.active_call
        if call is None or call.session_id != session_id or call.status != "initiated":
            raise CallsError("no-ringing-call", f"no ringing call {session_id}")
        if (call.receiver.uid == calls.uid) != incoming:
            raise CallsError(
                "no-ringing-call",
                "that call is " + ("our own outgoing call" if incoming else "an incoming call"),
            )

    # --- events --------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, protocols=(WEBSOCKET_PROTOCOL,))
        if not ws.can_prepare(request).ok:
            raise ApiError("not-websocket", "expected a WebSocket upgrade")
        with self._ctx.calls.events.subscribe() as queue:
            await ws.prepare(request)
            self._sockets.add(ws)
            try:
                await _pump_events(ws, queue, self._closing)
            finally:
                self._sockets.discard(ws)
                await ws.close()
        return ws

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in list(self._sockets)), return_exceptions=True)


async def _pump_events(
    ws: web.WebSocketResponse, queue: asyncio.Queue[CallEvent], closing: asyncio.Event
) -> None:
    """Send events until the client goes away (its frames are read only to notice that).
    Here the typed events become the JSON the seed's apps read."""

    async def read() -> None:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                return

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(closing.wait())
    try:
        while not ws.closed:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {getter, reader, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                return
            with contextlib.suppress(ConnectionError):
                await send_json(ws, getter.result().to_json())
    finally:
        for task in (reader, stopper):
            task.cancel()
        await asyncio.gather(reader, stopper, return_exceptions=True)


def call_model(call: Call) -> m.Call:
    return m.Call.model_validate(to_jsonable(call))


def hardware_states(ctx: ApiContext) -> dict[str, m.HardwareState]:
    hardware = ctx.hardware
    present = {
        "camera": bool(hardware.cameras),
        "audio": hardware.microphone is not None or bool(hardware.outputs),
        "bluetooth": hardware.bluetooth is not None,
        "buttons": hardware.buttons is not None,
        "display": hardware.display is not None and hardware.display.connected,
    }
    states: dict[str, m.HardwareState] = {}
    for kind, how in hardware.kinds.items():
        if how == "disabled":
            states[kind] = "disabled"
        elif not present.get(kind, True):
            states[kind] = "missing"
        else:
            states[kind] = "real" if how == "real" else "fake"
    return states


def selftest_view(report: Report | None) -> m.SelfTestView | None:
    return m.SelfTestView.model_validate(report.to_json()) if report is not None else None
