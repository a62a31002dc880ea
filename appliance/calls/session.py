"""One call session, from join to teardown: participants, media, events.

The session server is the source of truth for who takes part and their state (muted,
paused, recording), so every event means the same whichever media backend carries the
streams: peer to peer (``MeshMedia``), or a Janus VideoRoom (``JanusRoomMedia``) when the
server's ``Joined`` says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.audio.room import RoomAudio
from appliance.calls.controls import LocalControls
from appliance.calls.errors import CallsError
from appliance.calls.events import EventHub
from appliance.calls.idle import IdleTimer
from appliance.calls.joining import ReleaseStep, RenewToken, ServerSeat, release_all
from appliance.calls.membership import Membership, rtc_user
from appliance.calls.recording import CallRecording
from appliance.calls.settings import CallSettings, CallToken, DisplayMode, View
from appliance.calls.snapshot import SessionState
from appliance.calls.streams import CallStreams, MediaOptions
from appliance.events import (
    CallEnded,
    CallSwitchedToVideo,
    CallSwitchRequestInfo,
    KitWarning,
    LocalState,
    LocalStateChanged,
    RecordingToggled,
    RTCRecordingInfo,
    RTCUser,
    SessionTimeout,
    UserListChanged,
)
from appliance.media.counters import MediaCounters
from appliance.media.routes import AudioRouter
from appliance.signaling.client import SignalingClient, SignalingError
from appliance.signaling.messages import (
    Joined,
    Participant,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    ParticipantUpdated,
    ServerMessage,
    SessionEnded,
    SignalIn,
    SignalOut,
    StatePatch,
    SwitchedToVideo,
    SwitchToVideo,
)
from appliance.tasks import TaskSet
from hal.registry import Hardware

# The media stack loads with a kit's first call, not when it starts: an idle kit never
# needs it.
if TYPE_CHECKING:
    from appliance.media.backend import MediaBackend
    from appliance.media.peer import Health, LinkStats, Peer
    from appliance.media.recorder import Recorder

__all__ = ["CallSession", "MediaOptions", "SessionState"]

log = logging.getLogger(__name__)


class CallSession:
    """The call as a whole: its state, the server's messages and the media's news. Its
    parts do one job each: who is in it (``Membership``), our place on the server
    (``ServerSeat``), the media (``CallStreams``), our microphone, video, camera and audio
    route (``LocalControls``), the recording (``CallRecording``), the idle timer
    (``IdleTimer``)."""

    def __init__(
        self,
        token: CallToken,
        settings: CallSettings,
        *,
        client: SignalingClient,
        hub: EventHub,
        hardware: Hardware,
        router: AudioRouter,
        view: View | None,
        options: MediaOptions,
        on_state: Callable[[CallSession], None],
        room_audio: RoomAudio | None = None,
        renew_token: RenewToken | None = None,
        counters: MediaCounters | None = None,
    ) -> None:
        # What the kit's calls carried, for GET /metrics: Calls' object, shared by its calls.
        self.counters = counters if counters is not None else MediaCounters()
        self.settings = settings
        self.session_id = token.session_id
        self.key = object()  # this session's identity in its snapshots (CallSnapshot)
        self._client = client
        self._hub = hub
        self._router = router
        self._on_state = on_state
        self.state = SessionState.CONNECTING
        self.audio_only = settings.is_audio_only
        self.pip = False
        self.display_mode = settings.mode
        self._seat = ServerSeat(client, token, renew_token=renew_token, warn=self._warn)
        self._room_audio = room_audio
        self.audio = room_audio.start_call(self._warn) if room_audio is not None else None
        self.streams = CallStreams(
            hardware,
            options,
            view,
            warn=self._warn,
            on_camera_change=lambda ok: self.controls.camera_changed(ok),
            on_output_failed=router.report_failure,
            processing=self.audio,
            counters=self.counters,
        )
        # Never replaced during the call: snapshots and the tests read them here.
        self.local = self.streams.local
        self.mixer = self.streams.mixer
        self.remote_video = self.streams.remote_video
        self.members = Membership(
            hub.emit,
            connect=self._connect_media,
            release=self.streams.release,
            active=lambda: self.state == SessionState.ACTIVE,
            left_unseen=self._after_membership_change,
            log_prefix=f"session {self.session_id}: ",
        )
        self._tasks = TaskSet(log, prefix=f"session {self.session_id}: ")
        self.controls = LocalControls(
            self.local,
            router,
            publish=self._publish,
            emit=hub.emit,
            me=self.local_user,
            changed=self._local_changed,
            tasks=self._tasks,
            log_prefix=f"session {self.session_id}: ",
        )
        self.recording = CallRecording(
            options.recordings_dir,
            self.session_id,
            (self.local, self.mixer, self.remote_video),
            # A view that composes the screen (the HDMI compositor) composes the recording
            # too: the call's default layout, without the on-screen buttons.
            frame_source=getattr(view, "recording_frame", None),
            announce=self._recording_toggled,
            warn=self._warn,
            tasks=self._tasks,
        )
        self._idle = IdleTimer(settings.idle_timeout_period, emit=hub.emit, expire=self._idled)
        self._joined = asyncio.Event()
        self._media_lost: asyncio.Task[None] | None = None
        self.ended_reason: str | None = None

    @property
    def token(self) -> CallToken:
        """The call token we joined with (a fresh one after ours expired)."""
        return self._seat.token

    @property
    def me(self) -> Participant | None:
        return self.members.me

    @property
    def participants(self) -> dict[str, Participant]:
        """The others, in join order."""
        return self.members.others

    @property
    def recorder(self) -> Recorder | None:
        return self.recording.recorder

    @property
    def media(self) -> MediaBackend | None:
        """What carries the media between kits, chosen once the server said how."""
        return self.streams.backend

    @property
    def peers(self) -> dict[str, Peer]:
        """The mesh's peer connections by uid (none when a media server carries the call)."""
        return self.streams.peers

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self._hub.delegate = settings.delegate
        if settings.default_audio_mode is not None:
            try:
                await self._router.select(settings.default_audio_mode)
            except CallsError as err:
                self._warn(err.code, "audio", err.message)
        await self.local.start(
            audio_muted=settings.start_audio_muted,
            video_enabled=False,  # until the server says what kind of call this is
            video_paused=settings.start_video_muted,
        )
        self.mixer.start()
        await self._router.bind(self.mixer)
        self.streams.open_camera_early(not settings.is_audio_only)  # never for audio-only
        try:
            reply = await self._seat.join(
                ParticipantState(
                    muted=settings.start_audio_muted,
                    video_paused=settings.start_video_muted,
                    audio_only=settings.is_audio_only,
                )
            )
        except BaseException as err:
            await self.streams.settle_camera(None)
            if not isinstance(err, SignalingError | ConnectionError | TimeoutError):
                raise
            await self._abort_join(leave=False)
            if isinstance(err, SignalingError):
                raise
            raise CallsError("server-unreachable", f"the session server: {err}") from None
        self.audio_only = reply.audio_only
        await self.streams.settle_camera(not self.audio_only)
        media = self._choose_backend(reply)
        from appliance.media.backend import MediaUnavailable

        try:
            await media.start(video=not self.audio_only)
        except MediaUnavailable as err:
            await self._abort_join(leave=True)
            raise CallsError("media-unavailable", str(err)) from None
        self.members.me = reply.you
        self.state = SessionState.ACTIVE
        self._on_state(self)
        self._joined.set()
        for participant in reply.participants:
            self.members.add(participant, offerer=True)
        self._emit_user_list()
        self._update_idle()
        self._local_changed()

    async def _abort_join(self, *, leave: bool) -> None:
        """The join failed: release what the call took and go back to idle. ``leave``: the
        server had taken us in, and is told we left."""
        self._joined.set()
        if leave:
            await self._seat.leave()
        await self._teardown()
        self.state = SessionState.IDLE
        self._hub.delegate = None

    async def rejoin(self) -> None:
        """After the signaling connection came back (it dropped, or the server restarted):
        take our place again with our current state, reconcile who is there, and tell the
        delegate what changed meanwhile. Media between kits never depended on the server.
        A refusal ends the call; ConnectionError and TimeoutError reach the caller, which
        reconnects and calls this again."""
        try:
            reply = await self._seat.rejoin(self._participant_state())
        except SignalingError as err:
            self._warn(err.code, "server", f"could not rejoin the session: {err.message}")
            await self.end(notify_server=False, reason=err.code)
            return
        if self.state != SessionState.ACTIVE:
            return
        changed = await self.members.rebuild(
            reply.you, reply.participants, media_flowing=self.streams.receiving_from
        )
        self._seat.seated = True
        self.streams.signaling_restored()
        if self.members.awaiting_rejoin and not self.streams.peer_to_peer:
            self.members.wait_for_rejoiners()
        if changed:
            await self._after_membership_change()

    def signaling_lost(self) -> None:
        """The signaling connection dropped: offers wait until we have rejoined."""
        self._seat.seated = False

    async def _after_membership_change(self) -> None:
        self._emit_user_list()
        if self.members.one_to_one_over:
            await self.end(reason="peer-left")
            return
        self._update_idle()

    async def end(
        self,
        *,
        notify_server: bool = True,
        reason: str = "ended",
        timed_out: bool = False,
    ) -> None:
        """``timed_out``: the idle timeout ends it, and the delegate hears onSessionTimeout
        instead of onCallEnded."""
        if self.state in (SessionState.ENDING, SessionState.IDLE):
            return
        self.state = SessionState.ENDING
        self.ended_reason = reason
        self._on_state(self)
        if notify_server and self._client.connected:
            await self._seat.leave()
        await self._teardown()
        self.state = SessionState.IDLE
        self._hub.emit(SessionTimeout() if timed_out else CallEnded())
        self._hub.delegate = None
        self._on_state(self)

    async def _teardown(self) -> None:
        self._idle.cancel()
        self.members.stop_waiting()
        self._tasks.cancel()
        steps: list[ReleaseStep] = []
        recorder = self.recording.take()
        if recorder is not None:
            steps.append(("the recording", recorder.stop))
        steps += self.streams.release_steps(unbind_output=lambda: self._router.bind(None))
        if self._room_audio is not None and self.audio is not None:
            room_audio, audio = self._room_audio, self.audio
            steps.append(("the room audio", lambda: room_audio.end_call(audio)))
        await release_all(steps, log_prefix=f"session {self.session_id}: ")

    # --- messages from the server --------------------------------------------------------

    async def handle(self, message: ServerMessage) -> None:
        await self._joined.wait()
        if self.state != SessionState.ACTIVE:
            return
        if isinstance(message, SignalIn):
            if self.media is not None:
                await self.media.handle_signal(message)
        elif isinstance(message, ParticipantJoined):
            if self.members.joined(message.participant):
                self._emit_user_list()
                self._update_idle()
        elif isinstance(message, ParticipantLeft):
            if message.participant.uid in self.participants:
                await self.members.remove(message.participant.uid)
                self._emit_user_list()
                self._update_idle()
        elif isinstance(message, ParticipantUpdated):
            self.members.update(message.participant, list(message.changed))
        elif isinstance(message, SwitchedToVideo):
            await self._on_switched_to_video(message.by)
        elif isinstance(message, SessionEnded):
            await self.members.remove_all()
            await self.end(notify_server=False, reason=message.reason)

    async def _on_switched_to_video(self, by: Participant) -> None:
        self.audio_only = False
        self.members.clear_audio_only()
        await self.local.enable_video()
        if self.media is not None:
            await self.media.enable_video()
        me = self.local_user()
        initiator = me if self.me is not None and by.uid == self.me.uid else rtc_user(by)
        accepted = None if initiator is me else me
        self._hub.emit(
            CallSwitchedToVideo(CallSwitchRequestInfo(self.session_id, initiator, accepted))
        )
        self._local_changed()

    # --- media ---------------------------------------------------------------------------

    def _choose_backend(self, joined: Joined) -> MediaBackend:
        async def send(message: SignalOut) -> None:
            await self._client.send(message)

        return self.streams.choose_backend(
            joined,
            send=send,
            can_signal=self._seat.can_signal,
            wanted=lambda uid: uid in self.participants,
            on_health=self._on_link_health,
            on_failed=self._media_failed,
        )

    def _connect_media(self, participant: Participant, offerer: bool) -> None:
        # Video goes between two kits only when neither asked for an audio-only call.
        video = not (self.audio_only or participant.audio_only)
        self.streams.connect(participant, offerer=offerer, video=video)

    def _media_failed(self, code: str, reason: str) -> None:
        """The media cannot come back: the media server went away (stopped, restarted,
        unreachable), or nothing has arrived from anyone for long (this kit is cut off).
        The call ends as cleanly as it would for a hang-up, never left hanging, whether
        or not the session server can still be told."""
        if self.state != SessionState.ACTIVE or self._media_lost is not None:
            return
        self._warn(code, "network", reason)
        # Not one of self._tasks: the teardown cancels those, and this task runs it.
        self._media_lost = asyncio.create_task(self.end(reason=code), name="media lost")

    def _on_link_health(self, uid: str, health: Health) -> None:
        from appliance.media.peer import Health

        participant = self.participants.get(uid)
        if participant is None or self.state != SessionState.ACTIVE:
            return
        if health == Health.INTERRUPTED:
            gone = self.members.media_interrupted(uid)
            self._warn(
                "media-interrupted", "network", f"no media from {participant.name}; reconnecting"
            )
            if gone:  # not on the server, and now silent
                self._tasks.spawn(self.members.drop([uid]), f"drop {uid}")
        elif health == Health.CONNECTED and self.members.media_restored(uid):
            self._warn("media-restored", "network", f"media from {participant.name} is back")

    # --- local actions -------------------------------------------------------------------

    def local_user(self) -> RTCUser:
        assert self.me is not None
        return replace(
            rtc_user(self.me),
            audio_muted=self.local.audio_muted,
            video_paused=self.controls.video_paused_for_others,
            audio_only=self.audio_only,
        )

    def _participant_state(self) -> ParticipantState:
        return ParticipantState(
            muted=self.local.audio_muted,
            video_paused=self.controls.video_paused_for_others,
            recording=self.recorder is not None,
            audio_only=self.audio_only,
        )

    async def _publish(self, patch: StatePatch) -> None:
        self.members.update_me({k: v for k, v in patch.model_dump().items() if v is not None})
        await self._seat.publish(patch)

    def set_pip(self, enabled: bool) -> None:
        if enabled == self.pip:
            return
        self.pip = enabled
        self._local_changed()

    def set_display_mode(self, mode: DisplayMode, *, announce: bool = True) -> None:
        if mode is not self.display_mode:
            self.display_mode = mode
            if announce:
                self._local_changed()

    async def switch_to_video_call(self) -> None:
        if not self.audio_only and not any(p.audio_only for p in self.participants.values()):
            raise CallsError("not-audio-only", "the call already has video")
        await self._client.request(SwitchToVideo(type="switch-to-video"))

    async def _recording_toggled(self, recording: bool, path: Path) -> None:
        await self._publish(StatePatch(recording=recording))
        self._hub.emit(RecordingToggled(RTCRecordingInfo(recording, self.local_user(), str(path))))
        self._local_changed()

    # --- idle timeout --------------------------------------------------------------------

    def _update_idle(self) -> None:
        self._idle.update(alone=not self.participants, active=self.state == SessionState.ACTIVE)

    async def _idled(self) -> None:
        await self.end(reason="idle-timeout", timed_out=True)

    # --- helpers -------------------------------------------------------------------------

    def users(self) -> list[RTCUser]:
        me = [self.local_user()] if self.me is not None else []
        return me + [rtc_user(p) for p in self.participants.values()]

    def media_links(self) -> dict[str, LinkStats]:
        """Per other participant, its mesh connection's figures (none on a media server)."""
        return self.streams.links()

    def media_stats(self) -> dict[str, dict[str, Any]]:
        """Per other participant, what arrives from them: for people looking after the
        kits (GET /api/v1/session) and for tests proving media flows."""
        return self.streams.stats(list(self.participants))

    def _emit_user_list(self) -> None:
        self._hub.emit(UserListChanged(tuple(self.users())))

    def local_state(self) -> LocalState:
        return LocalState(
            audio_muted=self.local.audio_muted,
            video_paused=self.local.video_paused,
            audio_mode=self._router.current.value if self._router.current else None,
            recording=self.recorder is not None,
            pip=self.pip,
            display_mode=self.display_mode.value,
            audio_only=self.audio_only,
        )

    def _local_changed(self) -> None:
        if self.state == SessionState.ACTIVE:
            self._hub.emit(LocalStateChanged(self.local_state()))

    def _warn(self, code: str, device: str, message: str) -> None:
        log.warning("session %s: %s: %s", self.session_id, device, message)
        self._hub.emit(KitWarning(code=code, device=device, message=message))
