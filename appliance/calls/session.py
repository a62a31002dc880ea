"""One call session, from join to teardown: participants, media, events.

The session server is the source of truth for who takes part and their state (muted,
paused, recording), so every event means the same whichever media backend carries the
streams: peer to peer (``MeshMedia``), or a Janus VideoRoom (``JanusRoomMedia``) when the
server's ``Joined`` says so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from appliance.audio.room import RoomAudio
from appliance.audio.settings import RoomAudioConfig
from appliance.calls.errors import CallsError
from appliance.calls.events import EventHub
from appliance.calls.settings import AudioMode, CallSettings, CallToken, View
from appliance.events import (
    CallEnded,
    CallSwitchedToVideo,
    CallSwitchRequestInfo,
    KitWarning,
    LocalState,
    LocalStateChanged,
    RecordingToggled,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
    SessionTimeout,
    SessionTimeoutWarning,
    UserJoined,
    UserLeft,
    UserListChanged,
    UserMuted,
    UserVideoPaused,
)
from appliance.media.counters import MediaCounters
from appliance.media.levels import SILENCE_DBFS
from appliance.media.routes import AudioRouter
from appliance.signaling.client import SignalingClient, SignalingError
from appliance.signaling.messages import (
    Join,
    Joined,
    Leave,
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
    UpdateState,
)
from appliance.tasks import TaskSet
from hal.camera.base import VideoFormat
from hal.errors import HardwareError
from hal.registry import Hardware

# The media stack (aiortc, its codecs, DTLS and SRTP: some 20 MiB) loads with a kit's first
# call, not when it starts: an idle kit never needs it.
if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCIceServer

    from appliance.media.backend import MediaBackend
    from appliance.media.mesh import MeshMedia
    from appliance.media.peer import Health, LinkStats, Peer
    from appliance.media.recorder import Recorder

log = logging.getLogger(__name__)

IDLE_WARNING_LEAD = 60  # seconds before an idle timeout, as the seed's UI warns
LEAVE_TIMEOUT = 2.0
# After we rejoin, how long a participant the server does not list yet (it restarted, and
# they have not reconnected) may take to come back, when their media cannot tell us.
REJOIN_WAIT = 20.0
PATCHED_FIELDS = ("muted", "video_paused", "recording")

RenewToken = Callable[[], Awaitable[CallToken]]


class SessionState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDING = "ending"


@dataclass(frozen=True)
class MediaOptions:
    video_format: VideoFormat = field(default_factory=VideoFormat)
    ice_servers: tuple[RTCIceServer, ...] = ()
    video_codec: str | None = None  # "VP8" or "H264" to force one; None lets SDP decide
    recordings_dir: Path = Path("recordings")
    audio: RoomAudioConfig = field(default_factory=RoomAudioConfig)
    state_dir: Path | None = None  # where measured echo delays are kept; None: memory only


def rtc_user(p: Participant) -> RTCUser:
    return RTCUser(
        uid=p.uid,
        name=p.name,
        avatar=p.avatar,
        audio_muted=p.muted,
        video_paused=p.video_paused,
        audio_only=p.audio_only,
    )


class CallSession:
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
        self.token = token
        # What the kit's calls carried, for GET /metrics: Calls' object, shared by its calls.
        self.counters = counters if counters is not None else MediaCounters()
        self._renew_token = renew_token  # a fresh call token, when ours expired
        self.settings = settings
        self.session_id = token.session_id
        self._client = client
        self._hub = hub
        self._router = router
        self._view = view
        self._options = options
        self._on_state = on_state
        self.state = SessionState.CONNECTING
        self.audio_only = settings.is_audio_only
        self.pip = False
        self.display_mode = settings.mode
        self.me: Participant | None = None
        self.participants: dict[str, Participant] = {}  # the others, in join order
        self.media: MediaBackend | None = None  # chosen once the server said how
        self._room_audio = room_audio
        self.audio = room_audio.start_call(self._warn) if room_audio is not None else None
        from appliance.media.local import LocalMedia
        from appliance.media.remote import AudioMixer, RemoteVideo

        self.local = LocalMedia(
            hardware.cameras,
            hardware.microphone,
            options.video_format,
            view,
            self._warn,
            on_camera_change=self._camera_changed,
            processing=self.audio,
            counters=self.counters,
        )
        self.mixer = AudioMixer(
            on_output_failed=router.report_failure, playback=self.audio, counters=self.counters
        )
        self.remote_video = RemoteVideo(view, self.counters)
        self.recorder: Recorder | None = None
        self._joined = asyncio.Event()
        self._idle_task: asyncio.Task[None] | None = None
        self._tasks = TaskSet(log, prefix=f"session {self.session_id}: ")
        self._media_lost: asyncio.Task[None] | None = None
        self.ended_reason: str | None = None
        self._peak = 1  # most people in the call at once, us included: 2 means 1:1
        self._on_server = True  # our membership is live on the server: signals go through
        self._interrupted: set[str] = set()  # participants whose media stopped
        self._awaiting_rejoin: set[str] = set()  # known, but not (yet) back on the server
        self._rejoin_timer: asyncio.Task[None] | None = None

    @property
    def peers(self) -> dict[str, Peer]:
        """The mesh's peer connections by uid (none when a media server carries the call)."""
        media = self.media
        return media.peers if _is_mesh(media) else {}

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
        try:
            reply = await self._client.request(
                Join(
                    type="join",
                    session_id=self.session_id,
                    call_token=self.token.token,
                    state=ParticipantState(
                        muted=settings.start_audio_muted,
                        video_paused=settings.start_video_muted,
                        audio_only=settings.is_audio_only,
                    ),
                )
            )
        except (SignalingError, ConnectionError, TimeoutError) as err:
            self._joined.set()
            await self._teardown()
            self.state = SessionState.IDLE
            self._hub.delegate = None
            if isinstance(err, SignalingError):
                raise
            raise CallsError("server-unreachable", f"the session server: {err}") from None
        assert isinstance(reply, Joined)
        self.audio_only = reply.audio_only
        if not self.audio_only:
            await self.local.enable_video()
        self.media = self._media_backend(reply)
        from appliance.media.backend import MediaUnavailable

        try:
            await self.media.start(video=not self.audio_only)
        except MediaUnavailable as err:
            self._joined.set()
            with contextlib.suppress(SignalingError, ConnectionError, TimeoutError):
                await self._client.request(Leave(type="leave"), timeout=LEAVE_TIMEOUT)
            await self._teardown()
            self.state = SessionState.IDLE
            self._hub.delegate = None
            raise CallsError("media-unavailable", str(err)) from None
        self.me = reply.you
        self.state = SessionState.ACTIVE
        self._on_state(self)
        self._joined.set()
        for participant in reply.participants:
            self._add_participant(participant, offerer=True)
        self._emit_user_list()
        self._update_idle()
        self._local_changed()

    async def rejoin(self) -> None:
        """After the signaling connection came back (it dropped, or the server restarted):
        take our place again with our current state, reconcile who is there, and tell the
        delegate what changed meanwhile. Media between kits never depended on the server.
        A refusal ends the call; ConnectionError and TimeoutError reach the caller, which
        reconnects and calls this again."""
        try:
            reply = await self._join_again()
        except SignalingError as err:
            self._warn(err.code, "server", f"could not rejoin the session: {err.message}")
            await self.end(notify_server=False, reason=err.code)
            return
        if self.state != SessionState.ACTIVE:
            return
        self.me = reply.you
        present = {p.uid: p for p in reply.participants}
        changed = False
        for uid in [u for u in self.participants if u not in present]:
            if self._media_from(uid):
                # Media still flows: they are coming back too (the server restarted and
                # forgot everyone). Gone only if their media stops or they never return.
                log.info("session %s: %s not back on the server yet", self.session_id, uid)
                self._awaiting_rejoin.add(uid)
            else:
                await self._remove_participant(uid)
                changed = True
        for uid, participant in present.items():
            self._awaiting_rejoin.discard(uid)
            if uid in self.participants:
                self._resync(participant)
            else:
                self._add_participant(participant, offerer=True)
                changed = True
        self._on_server = True
        if _is_mesh(self.media):
            self.media.signaling_restored()
        if self._awaiting_rejoin and not _is_mesh(self.media):
            self._wait_for_rejoiners()
        if changed:
            await self._after_membership_change()

    async def _join_again(self) -> Joined:
        join = Join(
            type="join",
            session_id=self.session_id,
            call_token=self.token.token,
            state=self._participant_state(),
        )
        try:
            reply = await self._client.request(join)
        except SignalingError as err:
            if err.code != "token-expired" or self._renew_token is None:
                raise
            # Our token expired while the server was away: the kit is still in this call,
            # so it asks for a fresh one with its own auth token. The server never takes
            # the expired one; a session that ended meanwhile refuses old tokens anyway.
            self._warn(
                "token-expired", "server", "the call token expired; rejoining with a new one"
            )
            self.token = await self._renew_token()
            reply = await self._client.request(
                join.model_copy(update={"call_token": self.token.token})
            )
        assert isinstance(reply, Joined)
        return reply

    def signaling_lost(self) -> None:
        """The signaling connection dropped: offers wait until we have rejoined."""
        self._on_server = False

    def _media_from(self, uid: str) -> bool:
        return _is_mesh(self.media) and self.media.receiving_from(uid)

    def _wait_for_rejoiners(self) -> None:
        if self._rejoin_timer is None or self._rejoin_timer.done():
            self._rejoin_timer = asyncio.create_task(self._drop_absent(), name="rejoin wait")

    async def _drop_absent(self) -> None:
        await asyncio.sleep(REJOIN_WAIT)
        await self._drop_participants(list(self._awaiting_rejoin))

    async def _drop_participants(self, uids: list[str]) -> None:
        """Participants that left while we could not hear it from the server."""
        dropped = [uid for uid in uids if uid in self.participants]
        self._awaiting_rejoin.difference_update(uids)
        if not dropped or self.state != SessionState.ACTIVE:
            return
        for uid in dropped:
            log.info("session %s: %s left while the server was away", self.session_id, uid)
            await self._remove_participant(uid)
        await self._after_membership_change()

    async def _after_membership_change(self) -> None:
        self._emit_user_list()
        if not self.participants and self._peak == 2:
            # A 1:1 call is over when either side goes, as the server would have said.
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
            with contextlib.suppress(SignalingError, ConnectionError, TimeoutError):
                await self._client.request(Leave(type="leave"), timeout=LEAVE_TIMEOUT)
        await self._teardown()
        self.state = SessionState.IDLE
        self._hub.emit(SessionTimeout() if timed_out else CallEnded())
        self._hub.delegate = None
        self._on_state(self)

    async def _teardown(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if self._rejoin_timer is not None and self._rejoin_timer is not asyncio.current_task():
            self._rejoin_timer.cancel()
        self._tasks.cancel()
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            steps.append(("the recording", recorder.stop))
        if self.media is not None:
            steps.append(("the peer connections", self.media.close))
        steps += [
            ("the mixer", self.mixer.stop),
            ("the audio output", lambda: self._router.bind(None)),
            ("the remote video", self.remote_video.stop),
            ("the camera and microphone", self.local.stop),
        ]
        if self._room_audio is not None and self.audio is not None:
            room_audio, audio = self._room_audio, self.audio
            steps.append(("the room audio", lambda: room_audio.end_call(audio)))
        # A device gone mid-call can fail its release: the rest is still released and the
        # kit still comes back to idle (else it would stay "ending" and refuse every call).
        for what, release in steps:
            try:
                await release()
            except Exception:
                log.exception("session %s: releasing %s failed", self.session_id, what)

    # --- messages from the server --------------------------------------------------------

    async def handle(self, message: ServerMessage) -> None:
        await self._joined.wait()
        if self.state != SessionState.ACTIVE:
            return
        if isinstance(message, SignalIn):
            if self.media is not None:
                await self.media.handle_signal(message)
        elif isinstance(message, ParticipantJoined):
            self._awaiting_rejoin.discard(message.participant.uid)
            if message.participant.uid in self.participants:
                # Back after a reconnect (or a server restart): only what changed is news.
                self._resync(message.participant)
                return
            self._add_participant(message.participant, offerer=False)
            self._emit_user_list()
            self._update_idle()
        elif isinstance(message, ParticipantLeft):
            if message.participant.uid in self.participants:
                await self._remove_participant(message.participant.uid)
                self._emit_user_list()
                self._update_idle()
        elif isinstance(message, ParticipantUpdated):
            self._on_participant_updated(message)
        elif isinstance(message, SwitchedToVideo):
            await self._on_switched_to_video(message.by)
        elif isinstance(message, SessionEnded):
            for uid in list(self.participants):
                await self._remove_participant(uid)
            await self.end(notify_server=False, reason=message.reason)

    def _add_participant(self, participant: Participant, *, offerer: bool) -> None:
        self.participants[participant.uid] = participant
        self._peak = max(self._peak, 1 + len(self.participants))
        self._hub.emit(UserJoined(rtc_user(participant)))
        if participant.recording:  # the call was being recorded before we heard of them
            recording = RTCRecordingInfo(True, rtc_user(participant))
            self._hub.emit(RecordingToggled(recording))
        if self.media is not None:
            # Video goes between two kits only when neither asked for an audio-only call.
            video = not (self.audio_only or participant.audio_only)
            self.media.add_participant(participant.uid, offerer=offerer, video=video)

    async def _remove_participant(self, uid: str) -> None:
        participant = self.participants.pop(uid)
        self._interrupted.discard(uid)
        self._awaiting_rejoin.discard(uid)
        self.mixer.remove(uid)
        self.remote_video.remove(uid)
        if self.media is not None:
            await self.media.remove_participant(uid)
        self._hub.emit(UserLeft(rtc_user(participant)))

    def _on_participant_updated(self, message: ParticipantUpdated) -> None:
        participant = message.participant
        if participant.uid not in self.participants:
            return
        self.participants[participant.uid] = participant
        self._emit_changes(participant, list(message.changed))

    def _resync(self, participant: Participant) -> None:
        """A participant as the server lists it after a reconnect: events for what changed
        while we could not hear about it."""
        before = self.participants[participant.uid]
        self.participants[participant.uid] = participant
        changed = [f for f in PATCHED_FIELDS if getattr(before, f) != getattr(participant, f)]
        self._emit_changes(participant, changed)

    def _emit_changes(self, participant: Participant, changed: list[str]) -> None:
        user = rtc_user(participant)
        if "muted" in changed:
            self._hub.emit(UserMuted(RTCMutedUser(user, user, participant.muted)))
        if "video_paused" in changed:
            self._hub.emit(UserVideoPaused(RTCVideoPausedUser(user, participant.video_paused)))
        if "recording" in changed:
            self._hub.emit(RecordingToggled(RTCRecordingInfo(participant.recording, user)))

    async def _on_switched_to_video(self, by: Participant) -> None:
        self.audio_only = False
        self.participants = {
            uid: p.model_copy(update={"audio_only": False}) for uid, p in self.participants.items()
        }
        if self.me is not None:
            self.me = self.me.model_copy(update={"audio_only": False})
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

    def _media_backend(self, joined: Joined) -> MediaBackend:
        from appliance.media.janus.room import JanusRoomMedia
        from appliance.media.mesh import MeshMedia

        options = self._options
        if joined.media is not None:
            return JanusRoomMedia(
                joined.media,
                uid=joined.you.uid,
                local=self.local,
                on_track=self._on_track,
                on_failed=lambda reason: self._media_failed("media-server-lost", reason),
                warn=self._warn,
                ice_servers=list(options.ice_servers),
                video_codec=options.video_codec,
            )

        async def send(message: SignalOut) -> None:
            await self._client.send(message)

        return MeshMedia(
            me=joined.you.uid,
            local=self.local,
            send=send,
            can_signal=lambda: self._on_server and self._client.connected,
            on_track=self._on_track,
            on_health=self._on_link_health,
            on_failed=lambda reason: self._media_failed("connection-lost", reason),
            warn=self._warn,
            ice_servers=list(options.ice_servers),
            video_codec=options.video_codec,
            counters=self.counters,
        )

    def _on_track(self, uid: str, track: MediaStreamTrack) -> None:
        if uid not in self.participants:
            return
        if track.kind == "audio":
            self.mixer.add_track(uid, track)
        elif track.kind == "video":
            self.remote_video.add_track(uid, track)

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
            self._interrupted.add(uid)
            self._warn(
                "media-interrupted", "network", f"no media from {participant.name}; reconnecting"
            )
            if uid in self._awaiting_rejoin:  # not on the server, and now silent: gone
                self._tasks.spawn(self._drop_participants([uid]), f"drop {uid}")
        elif health == Health.CONNECTED and uid in self._interrupted:
            self._interrupted.discard(uid)
            self._warn("media-restored", "network", f"media from {participant.name} is back")

    # --- local actions -------------------------------------------------------------------

    def local_user(self) -> RTCUser:
        assert self.me is not None
        return replace(
            rtc_user(self.me),
            audio_muted=self.local.audio_muted,
            video_paused=self._video_paused_for_others(),
            audio_only=self.audio_only,
        )

    def _video_paused_for_others(self) -> bool:
        return self.local.video_paused or not self.local.camera_ok

    def _participant_state(self) -> ParticipantState:
        return ParticipantState(
            muted=self.local.audio_muted,
            video_paused=self._video_paused_for_others(),
            recording=self.recorder is not None,
            audio_only=self.audio_only,
        )

    async def _publish(self, patch: StatePatch) -> None:
        if self.me is not None:
            changes = {k: v for k, v in patch.model_dump().items() if v is not None}
            self.me = self.me.model_copy(update=changes)
        with contextlib.suppress(ConnectionError):
            await self._client.send(UpdateState(type="state", state=patch))

    async def mute_audio(self, muted: bool) -> None:
        if muted == self.local.audio_muted:
            return  # no change: no one is told
        self.local.set_audio_muted(muted)
        await self._publish(StatePatch(muted=muted))
        me = self.local_user()
        self._hub.emit(UserMuted(RTCMutedUser(me, me, muted)))
        self._local_changed()

    async def pause_video(self, paused: bool) -> None:
        if paused == self.local.video_paused:
            return
        await self.local.set_video_paused(paused)
        await self._publish(StatePatch(video_paused=self._video_paused_for_others()))
        self._hub.emit(UserVideoPaused(RTCVideoPausedUser(self.local_user(), paused)))
        self._local_changed()

    def _camera_changed(self, ok: bool) -> None:
        self._tasks.spawn(
            self._publish(StatePatch(video_paused=self._video_paused_for_others())), "camera state"
        )
        self._local_changed()

    async def switch_camera(self) -> None:
        try:
            camera = await self.local.switch_camera()
        except HardwareError as err:
            raise CallsError("no-other-camera", err.message) from None
        log.info("session %s: switched to camera %s", self.session_id, camera.id)
        self._local_changed()

    async def set_audio_mode(self, mode: AudioMode) -> None:
        before = self._router.current
        await self._router.select(mode)  # chosen by hand even if current: it stays on it
        if self._router.current != before:
            self._local_changed()

    def set_pip(self, enabled: bool) -> None:
        if enabled == self.pip:
            return
        self.pip = enabled
        self._local_changed()

    async def switch_to_video_call(self) -> None:
        if not self.audio_only and not any(p.audio_only for p in self.participants.values()):
            raise CallsError("not-audio-only", "the call already has video")
        await self._client.request(SwitchToVideo(type="switch-to-video"))

    async def start_recording(self) -> Path:
        if self.recorder is not None:
            raise CallsError("already-recording", "the call is already being recorded")
        from appliance.media.recorder import Recorder

        recorder = Recorder(
            self._options.recordings_dir,
            self.session_id,
            self.local,
            self.mixer,
            self.remote_video,
            on_failure=self._recording_failed,
            # A view that composes the screen (the HDMI compositor) composes the recording
            # too: the call's default layout, without the on-screen buttons.
            frame_source=getattr(self._view, "recording_frame", None),
        )
        try:
            await recorder.start()
        except OSError as err:
            raise CallsError("recording-failed", f"cannot record: {err}", status=507) from None
        self.recorder = recorder
        await self._publish(StatePatch(recording=True))
        started = RTCRecordingInfo(True, self.local_user(), str(recorder.path))
        self._hub.emit(RecordingToggled(started))
        self._local_changed()
        return recorder.path

    async def stop_recording(self) -> Path:
        if self.recorder is None:
            raise CallsError("not-recording", "the call is not being recorded")
        recorder, self.recorder = self.recorder, None
        await recorder.stop()
        await self._publish(StatePatch(recording=False))
        stopped = RTCRecordingInfo(False, self.local_user(), str(recorder.path))
        self._hub.emit(RecordingToggled(stopped))
        self._local_changed()
        return recorder.path

    def _recording_failed(self, recorder: Recorder, err: Exception) -> None:
        if self.recorder is not recorder:
            return
        self._warn("recording-failed", "storage", str(err))

        async def stop() -> None:
            with contextlib.suppress(CallsError):
                await self.stop_recording()

        self._tasks.spawn(stop(), "stop failed recording")

    # --- idle timeout --------------------------------------------------------------------

    def _update_idle(self) -> None:
        alone = not self.participants
        if alone and self._idle_task is None and self.state == SessionState.ACTIVE:
            self._idle_task = asyncio.create_task(self._idle_countdown(), name="idle timeout")
        elif not alone and self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None

    async def _idle_countdown(self) -> None:
        period = self.settings.idle_timeout_period
        lead = min(IDLE_WARNING_LEAD, period)
        await asyncio.sleep(period - lead)
        self._hub.emit(SessionTimeoutWarning(seconds_left=lead))
        await asyncio.sleep(lead)
        self._idle_task = None  # end() must not cancel the task that is running it
        await self.end(reason="idle-timeout", timed_out=True)

    # --- helpers -------------------------------------------------------------------------

    def users(self) -> list[RTCUser]:
        me = [self.local_user()] if self.me is not None else []
        return me + [rtc_user(p) for p in self.participants.values()]

    def media_links(self) -> dict[str, LinkStats]:
        """Per other participant, its mesh connection's figures (none on a media server)."""
        return self.media.links() if _is_mesh(self.media) else {}

    def media_stats(self) -> dict[str, dict[str, Any]]:
        """Per other participant, what arrives from them: for people looking after the
        kits (GET /api/v1/session) and for tests proving media flows."""
        links = self.media.links() if _is_mesh(self.media) else {}
        now = asyncio.get_running_loop().time()
        stats: dict[str, dict[str, Any]] = {}
        for uid in self.participants:
            level = self.mixer.levels.get(uid)
            link = links.get(uid)
            last = link.last_received if link is not None else None
            stats[uid] = {
                "video_frames": self.remote_video.frames.get(uid, 0),
                "audio_level_dbfs": round(level.dbfs if level else SILENCE_DBFS, 1),
                "connection": link.state.value if link else None,
                "restarts": link.restarts if link else None,
                "packets_received": link.packets_received if link else None,
                "packets_lost": link.packets_lost if link else None,
                "last_received_s": round(now - last, 2) if last is not None else None,
            }
        return stats

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


def _is_mesh(media: MediaBackend | None) -> TypeGuard[MeshMedia]:
    """Whether the call's media is peer to peer."""
    from appliance.media.mesh import MeshMedia

    return isinstance(media, MeshMedia)
