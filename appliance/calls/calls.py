"""``Calls``: the seed's call-session API for one kit.

``calls`` is an object (several kits run in one process): it holds the signaling
connection, at most one session, the ringing flow's active call, the audio router and the
event hub every event goes through.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, assert_never

from appliance.audio.ringer import Ringer
from appliance.audio.room import RoomAudio
from appliance.calls.errors import CallsError, no_active_session
from appliance.calls.events import Call, CallType, CallUser, EventHub
from appliance.calls.session import CallSession, MediaOptions, SessionState
from appliance.calls.settings import AudioMode, CallSettings, CallToken, DisplayMode, View
from appliance.calls.snapshot import CallSnapshot, describe, snapshot_of
from appliance.calls.streams import load_media_stack
from appliance.events import (
    AudioModeChanged,
    CallBusy,
    CallEndButtonPressed,
    CallEndedMessageReceived,
    CallUnanswered,
    IncomingCallCancelled,
    IncomingCallReceived,
    KitWarning,
    ListenerEvent,
    LocalStateChanged,
    OutgoingCallAccepted,
    OutgoingCallInitiated,
    OutgoingCallRejected,
    SessionStateChanged,
)
from appliance.logs import session_log_context
from appliance.media.counters import MediaCounters
from appliance.media.routes import AudioRouter
from appliance.signaling.client import ServerApi, SignalingClient, SignalingError
from appliance.signaling.messages import (
    CallAction,
    CallEventMessage,
    CallInfo,
    CallInitiate,
    CallReply,
    Error,
    ServerMessage,
)
from appliance.tls import ClientTrust
from hal.registry import Hardware

log = logging.getLogger(__name__)

CallActionType = Literal["call-accept", "call-reject", "call-cancel", "call-end"]
# Reconnecting to the session server backs off from RECONNECT_FIRST to RECONNECT_MAX
# seconds (+-20 % jitter, so a restarted server's kits do not all come back at once): a kit
# whose network came back is in its session again within RECONNECT_MAX.
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 5.0


def backoff() -> Iterator[float]:
    """The waits between tries to reach the session server: from RECONNECT_FIRST, doubling
    to RECONNECT_MAX, each within 20 % either side."""
    delay = RECONNECT_FIRST
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, RECONNECT_MAX)


def _listener_event(message: CallEventMessage, call: Call) -> ListenerEvent:
    """The listener event a session server's ringing message is."""
    match message.type:
        case "call-incoming":
            return IncomingCallReceived(call)
        case "call-accepted":
            return OutgoingCallAccepted(call)
        case "call-rejected":
            return OutgoingCallRejected(call)
        case "call-cancelled":
            return IncomingCallCancelled(call)
        case "call-ended":
            return CallEndedMessageReceived(call)
        case "call-busy":
            return CallBusy(call)
        case "call-unanswered":
            return CallUnanswered(call)
        case _:
            assert_never(message.type)


def to_call(info: CallInfo) -> Call:
    return Call(
        session_id=info.session_id,
        initiator=CallUser(info.initiator.uid, info.initiator.name),
        receiver=CallUser(info.receiver.uid, info.receiver.name),
        call_type=info.call_type,
        status=info.status,
        initiated_at=info.initiated_at,
        joined_at=info.joined_at,
        ended_at=info.ended_at,
    )


class Calls:
    def __init__(
        self,
        *,
        server_url: str,
        uid: str,
        auth_token: str,
        hardware: Hardware,
        options: MediaOptions | None = None,
        view: View | None = None,
        server_trust: ClientTrust = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.uid = uid
        self.server_url = server_url
        self._sleep = sleep  # the reconnect schedule's clock (tests pass one that records)
        self.name = uid
        self.hardware = hardware
        self.options = options or MediaOptions()
        self.view = view
        self.events = EventHub()
        self.router = AudioRouter(
            hardware.outputs,
            on_modes_changed=self._modes_changed,
            on_route_changed=lambda mode: self._local_changed(),
        )
        # Echo cancellation and the rest per route, the echo delays, and the ringtones.
        audio_config = self.options.audio
        if hardware.kinds.get("audio") == "fake" and audio_config.echo_cancellation:
            # A fake microphone never hears the fake speaker: there is no echo to cancel,
            # and a canceller fed pure tones with nothing to learn only adds artefacts.
            log.info("%s: fake audio has no echo path: echo cancellation off", uid)
            audio_config = audio_config.model_copy(update={"echo_cancellation": False})
        self.audio = RoomAudio(audio_config, state_dir=self.options.state_dir)
        self.ringer = Ringer(
            self.events,
            hardware.outputs,
            self.options.audio,
            output_busy=lambda: self.router.in_use,
            before_ring=self._take_devices,
        )
        self.router.add_releaser(self.ringer.release)
        self._auth_token = auth_token
        self._client = SignalingClient(
            server_url, auth_token, client_name=f"callbox {uid}", trust=server_trust, uid=uid
        )
        self._client.on_event(self._on_server_message)
        self._client.on_close(self._on_disconnected)
        self._api = ServerApi(server_url, trust=server_trust)
        self.session: CallSession | None = None
        self.last_ended: CallSnapshot | None = None  # the latest session, as it began to end
        # Awaited before a session or a ringtone takes the devices (a running self-test
        # gives them up).
        self.before_devices: list[Callable[[], Awaitable[None]]] = []
        self.counters = MediaCounters()  # across every call, for GET /metrics
        self.active_call: Call | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        # Called each time the background reconnection reaches the session server.
        self.on_reconnected: list[Callable[[], None]] = []
        self._closing = False
        self._last_state = SessionState.IDLE
        self._session_lock = asyncio.Lock()

    # --- connection ----------------------------------------------------------------------

    async def login(self) -> None:
        """Connect to the session server (ringing needs it; start_session does it too)."""
        self.ringer.start()
        if self._client.connected:
            return
        try:
            welcome = await self._client.connect()
        except (OSError, TimeoutError) as err:
            raise CallsError("server-unreachable", f"the session server: {err}") from None
        self.name = welcome.name

    async def connect(self, patience: float) -> bool:
        """Connect if the session server answers within ``patience`` seconds; otherwise
        keep trying in the background and return False, so the kit still starts (its
        screen and API work) while the server is away. A refused token raises at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        delays = backoff()
        while True:
            try:
                await self.login()
                return True
            except CallsError as err:
                if err.code != "server-unreachable":
                    raise
                delay = next(delays)
                if loop.time() + delay > deadline:
                    log.warning("%s: %s; will keep trying", self.uid, err.message)
                    break
            await self._sleep(delay)
        if self._reconnect_task is None and not self._closing:
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="reconnect")
        return False

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self.session is not None:
            with session_log_context(self.session.session_id):
                await self.session.end()
        await self._client.close()
        await self._api.close()
        await self.ringer.close()
        await self.router.close()

    def _on_disconnected(self) -> None:
        if self.session is not None:
            self.session.signaling_lost()
        if self._closing or self._reconnect_task is not None:
            return
        log.warning("%s: lost the session server; reconnecting", self.uid)
        self._reconnect_task = asyncio.create_task(self._reconnect(), name="reconnect")

    async def _reconnect(self) -> None:
        delays = backoff()
        try:
            while not self._closing:
                await self._sleep(next(delays))
                try:
                    await self._client.connect()
                except (SignalingError, OSError, TimeoutError) as err:
                    log.info("%s: reconnect failed: %s", self.uid, err)
                    continue
                log.info("%s: reconnected to the session server", self.uid)
                for callback in list(self.on_reconnected):
                    callback()
                session = self.session
                if session is not None and session.state == SessionState.ACTIVE:
                    try:
                        with session_log_context(session.session_id):
                            await session.rejoin()
                    except (ConnectionError, TimeoutError) as err:
                        # Start afresh: a join that timed out may still land on this
                        # connection, and a second one there would be refused.
                        log.info("%s: rejoin failed: %s", self.uid, err)
                        session.signaling_lost()
                        await self._client.close()
                        delays = backoff()
                        continue
                return
        finally:
            self._reconnect_task = None

    # --- the session API -----------------------------------------------------------------

    async def generate_token(self, session_id: str, auth_token: str) -> CallToken:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id: expected a non-empty string")
        try:
            return await self._api.create_token(auth_token, session_id)
        except OSError as err:
            raise CallsError("server-unreachable", f"the session server: {err}") from None

    async def start_session(self, call_token: CallToken, settings: CallSettings) -> None:
        if not isinstance(call_token, CallToken):
            raise ValueError("call_token: expected the CallToken that generate_token returned")
        if not isinstance(settings, CallSettings):
            raise ValueError("settings: expected CallSettings (use CallSettingsBuilder)")
        # Lines logged for this session (and by the tasks it starts) carry its id.
        with session_log_context(call_token.session_id):
            await self._start_session(call_token, settings)

    async def _start_session(self, call_token: CallToken, settings: CallSettings) -> None:
        async with self._session_lock:
            if self.session is not None:
                raise CallsError("session-active", "a call session is already active")
            await self._take_devices()
            await self.login()
            await load_media_stack()  # before CallSession builds its media from it
            session = CallSession(
                call_token,
                settings,
                client=self._client,
                hub=self.events,
                hardware=self.hardware,
                router=self.router,
                view=settings.view or self.view,
                options=self.options,
                on_state=self._session_state,
                room_audio=self.audio,
                renew_token=lambda: self._api.create_token(self._auth_token, call_token.session_id),
                counters=self.counters,
            )
            self.counters.calls += 1
            self.session = session
            self._state_changed()
            try:
                await session.start()
            except BaseException:
                self.session = None
                self._state_changed()
                raise

    async def _take_devices(self) -> None:
        for hook in list(self.before_devices):
            await hook()

    def _session_state(self, session: CallSession) -> None:
        if session.state == SessionState.ENDING:
            self.last_ended = snapshot_of(session)
        if session.state == SessionState.IDLE and self.session is session:
            self.session = None
        self._state_changed()

    def _require_session(self) -> CallSession:
        session = self.session
        if session is None or session.state != SessionState.ACTIVE:
            raise no_active_session()
        return session

    async def switch_camera(self) -> None:
        await self._require_session().controls.switch_camera()

    async def mute_audio(self, muted: bool) -> None:
        await self._require_session().controls.mute_audio(_bool("muted", muted))

    async def pause_video(self, paused: bool) -> None:
        await self._require_session().controls.pause_video(_bool("paused", paused))

    async def set_audio_mode(self, mode: AudioMode | str) -> None:
        session = self._require_session()
        try:
            route = mode if isinstance(mode, AudioMode) else AudioMode(str(mode).upper())
        except ValueError:
            choices = ", ".join(m.value for m in AudioMode)
            raise ValueError(f"mode: expected one of {choices}, got {mode!r}") from None
        await session.controls.set_audio_mode(route)

    async def enter_pip_mode(self) -> None:
        self._require_session().set_pip(True)

    async def exit_pip_mode(self) -> None:
        self._require_session().set_pip(False)

    def set_display_mode(self, mode: DisplayMode, *, announce: bool = True) -> None:
        self._require_session().set_display_mode(mode, announce=announce)

    async def switch_to_video_call(self) -> None:
        await self._require_session().switch_to_video_call()

    async def start_recording(self) -> Path:
        return await self._require_session().recording.start()

    async def stop_recording(self) -> Path:
        return await self._require_session().recording.stop()

    async def end_session(self) -> None:
        await self._require_session().end()

    def press_end_call_button(self) -> None:
        """The end-call button (GPIO or REST): the app's delegate decides what it means."""
        self._require_session()
        self.events.emit(CallEndButtonPressed())

    # --- ringing -------------------------------------------------------------------------

    def add_call_listener(self, listener_id: str, listener: object) -> None:
        self.events.add_listener(listener_id, listener)

    def remove_call_listener(self, listener_id: str) -> None:
        self.events.remove_listener(listener_id)

    async def initiate_call(self, receiver_uid: str, call_type: CallType = "video") -> Call:
        if call_type not in ("audio", "video"):
            raise ValueError(f"call_type: expected audio or video, got {call_type!r}")
        if self.session is not None or (
            self.active_call and self.active_call.status == "initiated"
        ):
            raise CallsError("busy", "this kit is already in a call")
        call = await self._call_request(
            CallInitiate(type="call-initiate", receiver=receiver_uid, call_type=call_type)
        )
        if call.status == "initiated":
            self.active_call = call
            self.events.emit(OutgoingCallInitiated(call))
            self._state_changed()
        return call

    async def accept_call(self, session_id: str) -> Call:
        return await self._call_action("call-accept", session_id)

    async def reject_call(self, session_id: str) -> Call:
        return await self._call_action("call-reject", session_id)

    async def cancel_call(self, session_id: str) -> Call:
        return await self._call_action("call-cancel", session_id)

    async def end_call(self, session_id: str) -> Call:
        return await self._call_action("call-end", session_id)

    def clear_active_call(self) -> None:
        self.active_call = None
        self._state_changed()

    async def _call_action(self, action: CallActionType, session_id: str) -> Call:
        call = await self._call_request(CallAction(type=action, session_id=session_id))
        if call.status in ("ongoing", "initiated"):
            self.active_call = call
        elif self.active_call is not None and self.active_call.session_id == call.session_id:
            self.active_call = None
        self._state_changed()
        return call

    async def _call_request(self, message: Any) -> Call:
        await self.login()
        reply = await self._client.request(message)  # a refusal is a CallsError
        assert isinstance(reply, CallReply)
        return to_call(reply.call)

    # --- messages from the server --------------------------------------------------------

    async def _on_server_message(self, message: ServerMessage) -> None:
        if isinstance(message, CallEventMessage):
            self._on_call_event(message)
        elif isinstance(message, Error):
            log.warning("%s: session server says %s: %s", self.uid, message.code, message.message)
            self.events.emit(
                KitWarning(code=message.code, device="server", message=message.message)
            )
        elif (
            self.session is not None
            and getattr(message, "session_id", None) == self.session.session_id
        ):
            with session_log_context(self.session.session_id):
                await self.session.handle(message)

    def _on_call_event(self, message: CallEventMessage) -> None:
        call = to_call(message.call)
        mine = self.active_call is not None and self.active_call.session_id == call.session_id
        if message.type == "call-incoming":
            if self.active_call is None:
                self.active_call = call
        elif message.type == "call-accepted":
            self.active_call = call
        elif mine:
            self.active_call = None
        self.events.emit(_listener_event(message, call))
        self._state_changed()

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        if self.session is not None and self.session.state != SessionState.IDLE:
            return self.session.state
        if self.active_call is not None and self.active_call.status == "initiated":
            return SessionState.RINGING
        return SessionState.IDLE

    def _state_changed(self) -> None:
        state = self.state
        if state != self._last_state:
            self._last_state = state
            session_id = (
                self.session.session_id
                if self.session
                else (self.active_call.session_id if self.active_call else None)
            )
            self.events.emit(SessionStateChanged(state=state.value, session_id=session_id))

    def _modes_changed(self, modes: list[AudioMode]) -> None:
        self.events.emit(AudioModeChanged(tuple(modes)))

    def _local_changed(self) -> None:
        if self.session is not None and self.session.state == SessionState.ACTIVE:
            self.events.emit(LocalStateChanged(self.session.local_state()))

    def snapshot(self) -> dict[str, Any]:
        """What GET /api/v1/session returns."""
        return describe(self)

    def call_snapshot(self) -> CallSnapshot | None:
        """The session now, to read (the screen, the LEDs, the API); None: no session."""
        return snapshot_of(self.session) if self.session is not None else None


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value
