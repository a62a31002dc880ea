"""Sessions, their participants, and the relay of signals between them.

Everything here is synchronous: a request changes the state and queues the messages it
causes in one go, so no other request can observe a half-done change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.server.connection import Connection
from appliance.server.errors import BadMessage, ServerError
from appliance.server.tokens import CallTokens
from appliance.signaling.messages import (
    Error,
    Join,
    Joined,
    Message,
    Participant,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    SessionEnded,
    SignalIn,
    SignalOut,
    StatePatch,
    SwitchedToVideo,
)

StateField = Literal["muted", "video_paused", "recording", "audio_only"]
PATCHABLE: tuple[StateField, ...] = ("muted", "video_paused", "recording")
LeaveReason = Literal["left", "disconnected", "kicked"]
EndReason = Literal["peer-left", "call-ended"]
SessionOverHandler = Callable[[str, float], None]
MemberLeftHandler = Callable[[str, str], None]  # (session id, uid) of a session that goes on


@dataclass
class Member:
    participant: Participant
    connection: Connection | None  # None while it may still reconnect
    grace: asyncio.TimerHandle | None = None


class Session:
    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.members: dict[str, Member] = {}  # by uid, in joining order
        self.peak = 0  # most participants at once: 2 means it was a 1:1 call

    def send_to_others(self, uid: str, message: Message) -> None:
        for other_uid, member in self.members.items():
            if other_uid != uid and member.connection is not None:
                member.connection.send(message)

    def send_to_all(self, message: Message) -> None:
        self.send_to_others("", message)


class Rooms:
    def __init__(
        self,
        tokens: CallTokens,
        *,
        grace: float,
        on_session_over: SessionOverHandler,
        on_member_left: MemberLeftHandler | None = None,
    ) -> None:
        self._tokens = tokens
        self._grace = grace
        self._on_session_over = on_session_over
        self._on_member_left = on_member_left
        self._sessions: dict[str, Session] = {}
        self._joined: dict[Connection, Session] = {}  # each connection's session, while in one
        self._closed = False

    # --- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Sessions with someone in them (or reconnecting to them)."""
        return len(self._sessions)

    def is_live(self, session_id: str) -> bool:
        return session_id in self._sessions

    def in_session(self, uid: str) -> bool:
        """Whether the user takes part in any session (even while reconnecting)."""
        return any(uid in session.members for session in self._sessions.values())

    def session_of(self, connection: Connection) -> Session | None:
        """The session ``connection`` takes part in now, if any."""
        return self._joined.get(connection)

    def participants(self, session_id: str) -> list[Participant]:
        session = self._sessions.get(session_id)
        return [m.participant for m in session.members.values()] if session else []

    # --- requests ------------------------------------------------------------------------

    def join(self, connection: Connection, request: Join) -> Joined:
        current = self._joined.get(connection)
        if current is not None:
            raise ServerError("already-in-session", f"this connection is already in {current.id}")
        self._tokens.verify(request.call_token, session_id=request.session_id, uid=connection.uid)
        session = self._sessions.get(request.session_id)
        if session is None:
            session = Session(request.session_id)
            self._sessions[session.id] = session
        member = session.members.get(connection.uid)
        if member is None:
            member = self._add_member(session, connection, request)
        else:
            self._take_over(session, member, connection, request)
        self._joined[connection] = session
        others = [m.participant for uid, m in session.members.items() if uid != connection.uid]
        return Joined(
            session_id=session.id,
            you=member.participant,
            participants=others,
            audio_only=member.participant.audio_only,
        )

    def _add_member(self, session: Session, connection: Connection, request: Join) -> Member:
        user, state = connection.user, request.state
        participant = Participant(
            uid=user.uid,
            name=user.name,
            avatar=user.avatar,
            muted=state.muted,
            video_paused=state.video_paused,
            recording=state.recording,
            audio_only=state.audio_only,  # each participant's own: no one decides for others
            joined_at=time.time(),
        )
        member = Member(participant, connection)
        session.members[user.uid] = member
        session.peak = max(session.peak, len(session.members))
        session.send_to_others(
            user.uid, ParticipantJoined(session_id=session.id, participant=participant)
        )
        return member

    def _take_over(
        self, session: Session, member: Member, connection: Connection, request: Join
    ) -> None:
        """The same user again: a reconnect within the grace period, or a second connection
        replacing the first. The participant keeps its place; the others only hear of state
        that really changed."""
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        previous = member.connection
        if previous is not None and previous is not connection:
            self._joined.pop(previous, None)
            previous.send(
                Error(code="replaced", message="this user joined the session from elsewhere")
            )
        member.connection = connection
        patch = StatePatch(
            muted=request.state.muted,
            video_paused=request.state.video_paused,
            recording=request.state.recording,
        )
        self._apply(session, member, patch)

    def leave(self, connection: Connection) -> None:
        """Leaving when not in a session does nothing: the session may just have ended."""
        session = self._joined.get(connection)
        if session is not None and self._is_member(session, connection):
            self._remove(session, connection.uid, "left")
        self._joined.pop(connection, None)

    def connection_lost(self, connection: Connection) -> None:
        session = self._joined.pop(connection, None)
        if session is None or not self._is_member(session, connection):
            return
        member = session.members[connection.uid]
        member.connection = None
        if self._grace <= 0 or self._closed:
            if not self._closed:
                self._remove(session, connection.uid, "disconnected")
            return
        member.grace = asyncio.get_running_loop().call_later(
            self._grace, self._grace_over, session, connection.uid, member
        )

    def _grace_over(self, session: Session, uid: str, member: Member) -> None:
        member.grace = None
        if self._sessions.get(session.id) is session and session.members.get(uid) is member:
            self._remove(session, uid, "disconnected")

    def relay(
        self, connection: Connection, request: SignalOut, arrived: float | None = None
    ) -> None:
        """Pass a signal on to its target; ``arrived``: when it reached the server (loop
        time), for the relay latency metric."""
        if request.description is None and request.candidate is None:
            raise BadMessage("description, candidate: a signal needs at least one of them")
        session, _ = self._membership(connection)
        target = session.members.get(request.to) if request.to != connection.uid else None
        if target is None:
            raise ServerError(
                "unknown-participant", f"{request.to!r} is not another participant of {session.id}"
            )
        if target.connection is not None:  # one reconnecting renegotiates anyway
            target.connection.send(
                SignalIn.model_validate(
                    {
                        "session_id": session.id,
                        "from": connection.uid,
                        "description": request.description,
                        "candidate": request.candidate,
                    }
                ),
                relayed_since=arrived,
            )

    def update_state(self, connection: Connection, patch: StatePatch) -> None:
        session, member = self._membership(connection)
        self._apply(session, member, patch)

    def switch_to_video(self, connection: Connection) -> None:
        session, member = self._membership(connection)
        if not any(m.participant.audio_only for m in session.members.values()):
            raise ServerError("not-audio-only", f"{session.id} is already a video call")
        for each in session.members.values():
            each.participant = each.participant.model_copy(update={"audio_only": False})
        session.send_to_all(SwitchedToVideo(session_id=session.id, by=member.participant))

    def end_session(
        self, session_id: str, reason: EndReason, *, quietly: Connection | None = None
    ) -> None:
        """Ends a session for everyone in it; ``quietly`` (who asked for it) is not told."""
        session = self._sessions.get(session_id)
        if session is None:
            return
        ended = SessionEnded(session_id=session.id, reason=reason)
        for member in session.members.values():
            self._detach(session, member)
            if member.connection is not None and member.connection is not quietly:
                member.connection.send(ended)
        session.members.clear()
        self._over(session)

    def close(self) -> None:
        """Stops every timer. Sessions are not recorded as ended: after a restart the kits
        may come back to them with the tokens they hold."""
        self._closed = True
        for session in self._sessions.values():
            for member in session.members.values():
                if member.grace is not None:
                    member.grace.cancel()
                    member.grace = None
        self._sessions.clear()
        self._joined.clear()

    # --- internals -----------------------------------------------------------------------

    def _membership(self, connection: Connection) -> tuple[Session, Member]:
        session = self._joined.get(connection)
        if session is None or not self._is_member(session, connection):
            raise ServerError("not-in-session", "join a session first")
        return session, session.members[connection.uid]

    @staticmethod
    def _is_member(session: Session, connection: Connection) -> bool:
        member = session.members.get(connection.uid)
        return member is not None and member.connection is connection

    def _apply(self, session: Session, member: Member, patch: StatePatch) -> None:
        changes: dict[str, bool] = {
            name: value
            for name in PATCHABLE
            if (value := getattr(patch, name)) is not None
            and getattr(member.participant, name) != value
        }
        if not changes:
            return
        member.participant = member.participant.model_copy(update=changes)
        changed: list[StateField] = [name for name in PATCHABLE if name in changes]
        session.send_to_others(
            member.participant.uid,
            ParticipantUpdated(
                session_id=session.id, participant=member.participant, changed=changed
            ),
        )

    def _remove(self, session: Session, uid: str, reason: LeaveReason) -> None:
        member = session.members.pop(uid)
        self._detach(session, member)
        if len(session.members) == 1 and session.peak == 2:
            # A 1:1 call is over when either side goes.
            (last,) = session.members.values()
            self._detach(session, last)
            if last.connection is not None:
                last.connection.send(SessionEnded(session_id=session.id, reason="peer-left"))
            session.members.clear()
        elif session.members:
            session.send_to_all(
                ParticipantLeft(
                    session_id=session.id, participant=member.participant, reason=reason
                )
            )
            if self._on_member_left is not None:
                self._on_member_left(session.id, uid)
        if not session.members:
            self._over(session)

    def _detach(self, session: Session, member: Member) -> None:
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        if member.connection is not None and self._joined.get(member.connection) is session:
            del self._joined[member.connection]

    def _over(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
            self._on_session_over(session.id, time.time())
