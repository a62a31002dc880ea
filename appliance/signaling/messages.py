"""Every signaling message, as pydantic models. The server and the kits both parse with
these, so the protocol is written down once.

Transport: JSON text frames on ``GET /v1/ws``. The first client frame must be ``hello``.
A client frame may carry ``id`` (an int); the server's reply to it (``welcome``, ``joined``,
``call``, ``ack`` or ``error``) carries the same ``id``. Everything else the server sends
is an unsolicited event with no ``id``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

UID_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # fullmatch: what Uid accepts
Uid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
CallType = Literal["audio", "video"]
CallStatus = Literal["initiated", "ongoing", "rejected", "cancelled", "busy", "unanswered", "ended"]

MAX_MESSAGE_BYTES = 64 * 1024  # an SDP with many candidates is ~6 KiB


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Request(Message):
    id: int | None = Field(default=None, ge=0, le=2**53)


# --- shared payloads -------------------------------------------------------------------


class Description(Message):
    type: Literal["offer", "answer"]
    sdp: str = Field(max_length=MAX_MESSAGE_BYTES)
    # Which of a pair's successive connections this belongs to: each ICE restart makes a
    # new one, so an answer to an offer that a newer one replaced is told apart. An answer
    # without it (a browser) belongs to the offer outstanding.
    generation: int | None = Field(default=None, ge=0, le=2**53)


class Candidate(Message):
    candidate: str = Field(max_length=1024)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)


class ParticipantState(Message):
    muted: bool = False
    video_paused: bool = False
    recording: bool = False
    audio_only: bool = False


class StatePatch(Message):
    muted: bool | None = None
    video_paused: bool | None = None
    recording: bool | None = None


class Participant(Message):
    uid: str
    name: str
    avatar: str | None = None
    muted: bool = False
    video_paused: bool = False
    recording: bool = False
    audio_only: bool = False
    joined_at: float


class UserInfo(Message):
    uid: str
    name: str


class CallInfo(Message):
    session_id: str
    initiator: UserInfo
    receiver: UserInfo
    call_type: CallType
    status: CallStatus
    initiated_at: float
    joined_at: float | None = None
    ended_at: float | None = None


# --- client -> server ------------------------------------------------------------------


class Hello(Request):
    type: Literal["hello"]
    auth_token: str = Field(min_length=1, max_length=512)
    client: str | None = Field(default=None, max_length=128)
    # Who the client believes it is (a kit sends its configured uid): the server refuses a
    # token that belongs to another user, so a kit given another kit's token cannot pose
    # as that kit (and both ring when it is called).
    uid: Uid | None = None


class Join(Request):
    type: Literal["join"]
    session_id: SessionId
    call_token: str = Field(min_length=1, max_length=4096)
    state: ParticipantState = ParticipantState()


class Leave(Request):
    type: Literal["leave"]


class SignalOut(Request):
    """Offer/answer/candidate for one other participant of the same session."""

    type: Literal["signal"]
    to: Uid
    description: Description | None = None
    candidate: Candidate | None = None


class UpdateState(Request):
    type: Literal["state"]
    state: StatePatch


class SwitchToVideo(Request):
    type: Literal["switch-to-video"]


class CallInitiate(Request):
    type: Literal["call-initiate"]
    receiver: Uid
    call_type: CallType = "video"


class CallAction(Request):
    type: Literal["call-accept", "call-reject", "call-cancel", "call-end"]
    session_id: SessionId


class Ping(Request):
    type: Literal["ping"]


ClientMessage = Annotated[
    Hello
    | Join
    | Leave
    | SignalOut
    | UpdateState
    | SwitchToVideo
    | CallInitiate
    | CallAction
    | Ping,
    Field(discriminator="type"),
]
client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --- server -> client ------------------------------------------------------------------


class Reply(Message):
    id: int | None = None


class Welcome(Reply):
    type: Literal["welcome"] = "welcome"
    uid: str
    name: str


class Ack(Reply):
    type: Literal["ack"] = "ack"


class Error(Reply):
    """``code`` is stable (e.g. ``token-expired``); ``message`` is for people."""

    type: Literal["error"] = "error"
    code: str
    message: str


class JanusRoomAccess(Message):
    """What a kit needs to take part in a session whose media runs on a Janus VideoRoom.
    Only a kit whose call token the server accepted learns it: ``token`` is in the room's
    allowed list for this participant alone, and the room wants ``pin`` too."""

    type: Literal["janus"] = "janus"
    url: str  # Janus's WebSocket API (subprotocol janus-protocol)
    room: int
    pin: str
    token: str
    api_secret: str | None = None  # when that Janus wants one on every request


class Joined(Reply):
    type: Literal["joined"] = "joined"
    session_id: str
    you: Participant
    participants: list[Participant]  # the others already there, oldest first
    audio_only: bool  # the joiner's own call type (as it asked, until switched)
    media: JanusRoomAccess | None = None  # None: media flows peer to peer (mesh)


class CallReply(Reply):
    """Reply to call-initiate / call-accept / ...: the call as it now stands."""

    type: Literal["call"] = "call"
    call: CallInfo


class SignalIn(Message):
    type: Literal["signal"] = "signal"
    session_id: str
    from_: str = Field(alias="from")
    description: Description | None = None
    candidate: Candidate | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParticipantJoined(Message):
    type: Literal["participant-joined"] = "participant-joined"
    session_id: str
    participant: Participant


class ParticipantLeft(Message):
    type: Literal["participant-left"] = "participant-left"
    session_id: str
    participant: Participant
    reason: Literal["left", "disconnected", "kicked"] = "left"


class ParticipantUpdated(Message):
    type: Literal["participant-updated"] = "participant-updated"
    session_id: str
    participant: Participant
    changed: list[Literal["muted", "video_paused", "recording", "audio_only"]]


class SwitchedToVideo(Message):
    type: Literal["switched-to-video"] = "switched-to-video"
    session_id: str
    by: Participant


class SessionEnded(Message):
    """The session is over for everyone still in it (1:1 call whose other side left)."""

    type: Literal["session-ended"] = "session-ended"
    session_id: str
    reason: Literal["peer-left", "call-ended"]


class CallEventMessage(Message):
    type: Literal[
        "call-incoming",
        "call-accepted",
        "call-rejected",
        "call-cancelled",
        "call-ended",
        "call-busy",
        "call-unanswered",
    ]
    call: CallInfo


class Pong(Reply):
    type: Literal["pong"] = "pong"


ServerMessage = Annotated[
    Welcome
    | Ack
    | Error
    | Joined
    | CallReply
    | SignalIn
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantUpdated
    | SwitchedToVideo
    | SessionEnded
    | CallEventMessage
    | Pong,
    Field(discriminator="type"),
]
server_message: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def dump(message: Message) -> str:
    return message.model_dump_json(by_alias=True, exclude_none=False)


def parse_error_fields(errors: list[Any]) -> str:
    """A short, human sentence out of pydantic's errors: which field and why."""
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
