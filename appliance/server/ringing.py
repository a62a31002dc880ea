"""The ringing flow: one user calls another, who accepts, rejects or lets it ring out.

A call lives here while it is ``initiated`` or ``ongoing``; every change of status is
written to the call log. The call's session id is the session both parties then join.

    initiated --accept--> ongoing --end / session over / nobody joins--> ended
        |--reject--> rejected   |--cancel--> cancelled   |--ring timeout--> unanswered
    (a receiver already in a call or a session makes the call ``busy`` at once)
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from appliance.server.connection import Connection, ConnectionRegistry
from appliance.server.errors import BadMessage, ServerError
from appliance.server.rooms import Rooms
from appliance.server.store import Store, User
from appliance.signaling.messages import CallEventMessage, CallInfo, CallStatus, CallType, UserInfo

log = logging.getLogger(__name__)

CallAction = Literal["call-accept", "call-reject", "call-cancel", "call-end"]
CallEvent = Literal[
    "call-incoming",
    "call-accepted",
    "call-rejected",
    "call-cancelled",
    "call-ended",
    "call-busy",
    "call-unanswered",
]


@dataclass
class LiveCall:
    info: CallInfo
    timer: asyncio.TimerHandle | None = None  # ring timeout, then the join deadline

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Ringing:
    def __init__(
        self,
        *,
        store: Store,
        connections: ConnectionRegistry,
        rooms: Rooms,
        ring_timeout: float,
        join_timeout: float,
    ) -> None:
        self._store = store
        self._connections = connections
        self._rooms = rooms
        self._ring_timeout = ring_timeout
        self._join_timeout = join_timeout
        self._calls: dict[str, LiveCall] = {}

    def is_busy(self, uid: str) -> bool:
        if self._rooms.in_session(uid):
            return True
        return any(
            uid in (live.info.initiator.uid, live.info.receiver.uid)
            for live in self._calls.values()
        )

    def ringing_for(self, uid: str) -> list[CallInfo]:
        """Calls still ringing for ``uid`` (told to a receiver who connects late)."""
        return [
            live.info
            for live in self._calls.values()
            if live.info.status == "initiated" and live.info.receiver.uid == uid
        ]

    def initiate(self, caller: User, receiver: User, call_type: CallType) -> CallInfo:
        if receiver.uid == caller.uid:
            raise BadMessage("receiver: you cannot call yourself")
        now = time.time()
        busy = self.is_busy(receiver.uid)
        call = CallInfo(
            session_id=self._new_session_id(),
            initiator=UserInfo(uid=caller.uid, name=caller.name),
            receiver=UserInfo(uid=receiver.uid, name=receiver.name),
            call_type=call_type,
            status="busy" if busy else "initiated",
            initiated_at=now,
            ended_at=now if busy else None,
        )
        self._store.save_call(call)
        if busy:
            self._tell(caller.uid, "call-busy", call)
            return call
        live = LiveCall(call)
        self._calls[call.session_id] = live
        live.timer = asyncio.get_running_loop().call_later(
            self._ring_timeout, self._ring_out, call.session_id
        )
        self._tell(receiver.uid, "call-incoming", call)
        return call

    async def act(self, connection: Connection, action: CallAction, session_id: str) -> CallInfo:
        live = self._calls.get(session_id)
        if live is None:
            raise await self._refusal_for_past_call(connection.uid, session_id)
        call, uid = live.info, connection.uid
        allowed = {
            "call-accept": (call.receiver.uid,),
            "call-reject": (call.receiver.uid,),
            "call-cancel": (call.initiator.uid,),
            "call-end": (call.initiator.uid, call.receiver.uid),
        }[action]
        if uid not in allowed:
            raise ServerError("not-your-call", f"you cannot {action[5:]} this call")
        needed: CallStatus = "ongoing" if action == "call-end" else "initiated"
        if call.status != needed:
            raise ServerError("call-not-pending", f"the call is {call.status}")
        other = call.initiator.uid if uid == call.receiver.uid else call.receiver.uid
        if action == "call-accept":
            return self._accept(live, other)
        if action == "call-end":
            call = self._finish(live, "ended", notify=(other,), event="call-ended")
            self._rooms.end_session(session_id, "call-ended", quietly=connection)
            return call
        status: CallStatus = "rejected" if action == "call-reject" else "cancelled"
        event: CallEvent = "call-rejected" if action == "call-reject" else "call-cancelled"
        return self._finish(live, status, notify=(other,), event=event)

    def session_over(self, session_id: str, ended_at: float) -> None:
        """The call's session ended on its own (both left, or one side of a 1:1)."""
        live = self._calls.get(session_id)
        if live is not None and live.info.status == "ongoing":
            self._finish(live, "ended", notify=(), ended_at=ended_at)

    def close(self) -> None:
        for live in self._calls.values():
            live.stop_timer()
        self._calls.clear()

    # --- internals -----------------------------------------------------------------------

    def _accept(self, live: LiveCall, caller: str) -> CallInfo:
        live.stop_timer()
        live.info = live.info.model_copy(update={"status": "ongoing", "joined_at": time.time()})
        self._store.save_call(live.info)
        live.timer = asyncio.get_running_loop().call_later(
            self._join_timeout, self._join_deadline, live.info.session_id
        )
        self._tell(caller, "call-accepted", live.info)
        return live.info

    def _finish(
        self,
        live: LiveCall,
        status: CallStatus,
        *,
        notify: tuple[str, ...],
        event: CallEvent | None = None,
        ended_at: float | None = None,
    ) -> CallInfo:
        live.stop_timer()
        self._calls.pop(live.info.session_id, None)
        live.info = live.info.model_copy(
            update={"status": status, "ended_at": time.time() if ended_at is None else ended_at}
        )
        self._store.save_call(live.info)
        if event is not None:
            for uid in notify:
                self._tell(uid, event, live.info)
        return live.info

    def _ring_out(self, session_id: str) -> None:
        live = self._calls.get(session_id)
        if live is not None and live.info.status == "initiated":
            live.timer = None
            parties = (live.info.initiator.uid, live.info.receiver.uid)
            self._finish(live, "unanswered", notify=parties, event="call-unanswered")

    def _join_deadline(self, session_id: str) -> None:
        live = self._calls.get(session_id)
        if live is None or live.info.status != "ongoing" or self._rooms.is_live(session_id):
            return
        live.timer = None
        log.info("nobody joined accepted call %s; ending it", session_id)
        parties = (live.info.initiator.uid, live.info.receiver.uid)
        self._finish(live, "ended", notify=parties, event="call-ended")

    async def _refusal_for_past_call(self, uid: str, session_id: str) -> ServerError:
        past = await self._store.call(session_id)
        if past is None:
            return ServerError("unknown-call", f"no call {session_id!r}")
        if uid not in (past.initiator.uid, past.receiver.uid):
            return ServerError("not-your-call", "you are not a party to this call")
        return ServerError("call-not-pending", f"the call is {past.status}")

    def _tell(self, uid: str, event: CallEvent, call: CallInfo) -> None:
        self._connections.send_to_user(uid, CallEventMessage(type=event, call=call))

    def _new_session_id(self) -> str:
        while True:
            session_id = f"call-{secrets.token_hex(12)}"
            if session_id not in self._calls and not self._rooms.is_live(session_id):
                return session_id
