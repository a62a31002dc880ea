"""Request and response bodies of the REST API. The handlers validate and serialise with
these models and the OpenAPI document is generated from them, so the two cannot drift."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from appliance.calls.settings import (
    MAX_IDLE_TIMEOUT,
    MIN_IDLE_TIMEOUT,
    AudioMode,
    AvatarMode,
    CallSettings,
    DisplayMode,
)
from appliance.signaling.messages import SessionId, Uid

SESSION_STATES = ("idle", "ringing", "connecting", "active", "ending")
RECORDING_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,190}\.mkv$"
BLUETOOTH_ADDRESS = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"


class Body(BaseModel):
    """A request body: unknown fields are refused and nothing is coerced (``1`` is not
    ``true``), so what the schema says is exactly what is accepted."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ----------------------------------------------------------------------------


class ErrorDetail(Reply):
    code: str = Field(description="stable, for programs: no-active-session, invalid-field, ...")
    message: str = Field(description="for people")
    field: str | None = Field(None, description="the request field at fault, if any")


class ErrorBody(Reply):
    error: ErrorDetail


# --- health ----------------------------------------------------------------------------

HardwareState = Literal["real", "fake", "disabled", "missing"]


class KitInfo(Reply):
    uid: str
    name: str


class SessionServerInfo(Reply):
    url: str
    embedded: bool
    connected: bool


class SelfTestCheck(Reply):
    device: str = Field(description="camera fake0, audio, buttons, leds, screen, bluetooth")
    kind: Literal["camera", "audio", "buttons", "leds", "screen", "bluetooth"]
    status: Literal["ok", "failed", "skipped"]
    detail: str


class SelfTestView(Reply):
    """The hardware self-test's result (docs/SELFTEST.md)."""

    ok: bool = Field(description="no check failed (skipped ones do not count)")
    started_at: float = Field(description="unix time")
    duration_s: float
    checks: list[SelfTestCheck]


class LanKit(Reply):
    uid: str
    name: str
    api: str = Field(description="its REST API, as it announced it (not verified)")
    fingerprint: str | None = Field(None, description="its API's TLS certificate, as announced")


class LanKits(Reply):
    """Kits announced on the LAN (mDNS, docs/DISCOVERY.md): what they say, unverified."""

    enabled: bool = Field(description="whether [discovery] is enabled on this kit")
    kits: list[LanKit]


class JoinRequest(Reply):
    """A kit that found this kit's session server on the LAN and asks to become a user."""

    id: int
    uid: str
    name: str
    fingerprint: str | None = Field(
        description="its TLS certificate, as it says: compare it with the one on its screen"
    )
    address: str = Field(description="where the request came from")
    requested_at: float = Field(description="Unix time")
    status: Literal["pending", "approved", "rejected"]


class JoinRequestList(Reply):
    hosted: bool = Field(description="whether this kit hosts its session server (else: none)")
    requests: list[JoinRequest]


class Health(Reply):
    ok: bool
    version: str
    kit: KitInfo
    state: Literal["idle", "ringing", "connecting", "active", "ending"]
    hardware: dict[str, HardwareState] = Field(
        description="per device kind: real, fake, disabled, or missing (chosen but not there)"
    )
    session_server: SessionServerInfo
    warnings: list[str] = Field(
        default_factory=list,
        description="what the operator must know: REST config overrides that did not load "
        "and were set aside, a REST-set address that could not be used",
    )
    selftest: SelfTestView | None = Field(
        None, description="the last hardware self-test (none yet: it runs at start)"
    )


# --- the session -----------------------------------------------------------------------


class ReceivedMedia(Reply):
    """What arrives from one other participant: enough to tell a working call from a
    frozen one, and a poor network from a dead one."""

    video_frames: int = Field(description="video frames decoded since the call began")
    audio_level_dbfs: float = Field(description="their audio as it is played, smoothed")
    connection: Literal["connecting", "connected", "interrupted"] | None = Field(
        description="peer to peer: interrupted while nothing arrives and new connections "
        "are tried (ICE restarts); null through a media server"
    )
    restarts: int | None = Field(description="connections replaced by ICE restarts")
    packets_received: int | None = Field(description="RTP and RTCP packets received")
    packets_lost: int | None = Field(description="RTP packets sent to us that never came")
    last_received_s: float | None = Field(description="seconds since a packet last arrived")


class User(Reply):
    uid: str
    name: str
    avatar: str | None = None
    audio_muted: bool = False
    video_paused: bool = False
    audio_only: bool = False
    media: ReceivedMedia | None = Field(
        None, description="what arrives from them (not for this kit itself)"
    )


class LocalState(Reply):
    audio_muted: bool
    video_paused: bool
    audio_mode: AudioMode | None
    recording: bool
    pip: bool
    display_mode: DisplayMode
    audio_only: bool


class CallUser(Reply):
    uid: str
    name: str


class Call(Reply):
    session_id: str
    initiator: CallUser
    receiver: CallUser
    call_type: Literal["audio", "video"]
    status: Literal["initiated", "ongoing", "rejected", "cancelled", "busy", "unanswered", "ended"]
    initiated_at: float
    joined_at: float | None = None
    ended_at: float | None = None


class SessionView(Reply):
    state: Literal["idle", "ringing", "connecting", "active", "ending"]
    session_id: str | None
    participants: list[User] = Field(description="this kit first, then the others")
    local: LocalState | None
    call: Call | None = Field(description="the ringing flow's call, if any")
    audio_modes: list[AudioMode] = Field(description="the audio routes available now")
    audio_mode: AudioMode | None


def _settings_model() -> type[BaseModel]:
    """The builder's settings without ``set_`` as a model, derived from CallSettings so a new
    setting appears in the API by itself. CallSettings.from_dict has the last word."""
    hints = typing.get_type_hints(CallSettings)
    skip = {"view", "call_token", "delegate"}
    specs: dict[str, Any] = {}
    for f in fields(CallSettings):
        if f.name in skip:
            continue
        hint = hints[f.name]
        extra: dict[str, Any] = {}
        if f.name == "idle_timeout_period":
            extra = {"ge": MIN_IDLE_TIMEOUT, "le": MAX_IDLE_TIMEOUT}
        if hint in (DisplayMode, AvatarMode):
            hint = Literal[tuple(m.value for m in hint)]
        if f.name == "default_audio_mode":
            hint = AudioMode | None
        # Omitted means "the kit's default"; only default_audio_mode takes null as a value.
        specs[f.name] = (hint, Field(None, description=f"set_{f.name}", **extra))
    model: type[BaseModel] = create_model(
        "SessionSettings",
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__="Call settings: CallSettingsBuilder's setters without set_; omitted ones "
        "take the kit's defaults ([calls] default_settings), then the seed's.",
        **specs,
    )
    return model


SessionSettings = _settings_model()


class StartSession(Body):
    session_id: SessionId | None = Field(
        None, description="the session to start or join; a new one when omitted"
    )
    settings: SessionSettings = Field(default_factory=SessionSettings)  # type: ignore[valid-type]


class MuteAudio(Body):
    muted: bool


class PauseVideo(Body):
    paused: bool


class SetAudioMode(Body):
    mode: AudioMode


class SetPip(Body):
    enabled: bool


class SetRecording(Body):
    recording: bool


# --- ringing ---------------------------------------------------------------------------


class PlaceCall(Body):
    receiver: Uid
    type: Literal["audio", "video"] = "video"


class CallList(Reply):
    calls: list[Call]


class Contact(Reply):
    uid: str
    name: str
    online: bool = Field(description="connected to the session server now")


class ContactList(Reply):
    """The kits (users) the session server knows, but this one, online ones first."""

    kits: list[Contact]


# --- events ----------------------------------------------------------------------------


class EventMessage(Reply):
    """One frame of the events WebSocket (CallEvent.to_json())."""

    event: str = Field(description="onUserJoined, onUserMuted, onIncomingCallReceived, ...")
    data: dict[str, Any]
    ts: float


# --- auth ------------------------------------------------------------------------------


class NewToken(Reply):
    token: str = Field(description="shown once; only its hash is kept")


# --- config ----------------------------------------------------------------------------

Applies = Literal["now", "next-call", "restart"]


class ConfigChange(Reply):
    field: str
    applies: Applies = Field(
        description="now; on the next call (devices opened per call); or after a restart"
    )


# --- recordings, call log --------------------------------------------------------------


class Recording(Reply):
    name: str
    size: int
    modified: float
    recording: bool = Field(description="still being written")
    url: str


class RecordingList(Reply):
    recordings: list[Recording]


# --- devices ---------------------------------------------------------------------------


class CameraView(Reply):
    id: str
    name: str
    output: Literal["frames", "h264"]
    current: bool


class CameraList(Reply):
    cameras: list[CameraView]


class AudioRoutes(Reply):
    available: list[AudioMode]
    current: AudioMode | None


class BluetoothDeviceView(Reply):
    address: str
    name: str
    paired: bool
    connected: bool
    audio: bool


class BluetoothList(Reply):
    available: bool = Field(description="whether the kit has a Bluetooth manager")
    devices: list[BluetoothDeviceView]


# --- display ---------------------------------------------------------------------------


class SetDisplayMode(Body):
    mode: Literal["default", "single", "spotlight"]


class SelectTile(Body):
    uid: str | None = Field(max_length=64, description="the participant to feature; null: none")


class MoveTile(Body):
    uid: str = Field(min_length=1, max_length=64)
    x: int = Field(ge=0, le=7680, description="screen pixels")
    y: int = Field(ge=0, le=4320, description="screen pixels")


class Done(Reply):
    ok: bool = True


# --- invites and guests ----------------------------------------------------------------


class CreateInvite(Body):
    session_id: SessionId | None = Field(
        None,
        description="the session to invite to; when omitted, the kit's current one, or (idle) "
        "a new one that the kit starts when the link is first opened",
    )
    ttl: int = Field(3600, ge=60, le=7 * 24 * 3600, description="seconds the link works")
    uses: int = Field(1, ge=1, le=50, description="how many people may join with it")


class Invite(Reply):
    code: str
    url: str = Field(description="the join page, relative to this API's origin")
    session_id: str
    expires_at: float
    uses_left: int


class Redeem(Body):
    code: str = Field(min_length=8, max_length=128)
    name: str = Field("Guest", min_length=1, max_length=64)


class GuestPass(Reply):
    """What a browser needs to join: the same auth and call tokens a kit uses."""

    uid: str
    name: str
    auth_token: str
    call_token: str
    session_id: str
    kit: KitInfo
    signaling: str = Field(description="WebSocket path of the signaling proxy on this origin")
