"""A Janus VideoRoom per session, for a session server whose media is ``janus``.

On a session's first join the server places its room on a Janus (``JanusPool``), with a
secret (to manage it) and a pin (to enter it), and an empty ``allowed`` list. Each kit whose
call token the server accepts gets its own random token added to that list, and the room's
id, pin and token in ``Joined``; a kit without a valid call token never learns them, and
Janus refuses a publisher whose token is not listed and a subscriber without a publisher's
``private_id``. A participant who leaves loses its token and is kicked from the room; the
room is destroyed when the session is over.

Room ids, secrets and pins derive from a secret the server keeps, so after a restart it
finds its rooms again (kits keep their media flowing on Janus meanwhile) rather than making
a second room beside the first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from appliance.media.janus.api import JanusError, JanusGone
from appliance.server.connection import Connection
from appliance.server.errors import ServerError
from appliance.server.janus.pool import JanusPool, JanusServer
from appliance.server.rooms import Rooms
from appliance.server.tokens import CallTokens
from appliance.signaling.messages import JanusRoomAccess, Join, Joined
from appliance.tasks import TaskSet

log = logging.getLogger(__name__)

ROOM_ALREADY_EXISTS = 427
NO_SUCH_ROOM = 426
MAX_PUBLISHERS = 64
ROOM_BITRATE = 1_000_000  # per publisher, bits/s: a 720p30 camera stream


@dataclass
class JanusRoom:
    session_id: str
    server: JanusServer
    room_id: int
    secret: str
    pin: str
    tokens: dict[str, str] = field(default_factory=dict)  # uid -> its allowed token


class MediaServerUnavailable(ServerError):
    status = 503

    def __init__(self, message: str) -> None:
        super().__init__("media-unavailable", message)


class JanusRooms:
    def __init__(self, pool: JanusPool, *, tokens: CallTokens, rooms: Rooms) -> None:
        self.pool = pool
        self._tokens = tokens
        self._rooms = rooms
        self._secret: bytes | None = None
        self.rooms: dict[str, JanusRoom] = {}  # by session id
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}  # rooms being destroyed
        self._tasks = TaskSet(log)

    def use_secret(self, secret: str) -> None:
        self._secret = secret.encode()

    # --- requests ------------------------------------------------------------------------

    async def join(self, connection: Connection, request: Join) -> Joined:
        """``Rooms.join`` plus the Janus room: only for a call token the server accepts."""
        self._tokens.verify(request.call_token, session_id=request.session_id, uid=connection.uid)
        access = await self._admit(request.session_id, connection.uid)
        try:
            joined = self._rooms.join(connection, request)
        except BaseException:
            self._forget_unless_member(request.session_id, connection.uid)
            raise
        return joined.model_copy(update={"media": access})

    def member_left(self, session_id: str, uid: str) -> None:
        """A participant left a session that goes on: its token goes, and so does its feed."""
        room = self.rooms.get(session_id)
        if room is not None and uid in room.tokens:
            token = room.tokens.pop(uid)
            room.server.participants -= 1
            self._tasks.spawn(self._revoke(room, uid, token), f"revoke {uid} in {session_id}")

    def session_over(self, session_id: str) -> None:
        lock = self._locks.get(session_id)
        if lock is not None and not lock.locked():
            del self._locks[session_id]
        room = self.rooms.get(session_id)
        if room is None:
            return
        self._unplace(room)
        task = asyncio.create_task(self._destroy(room), name=f"destroy room {session_id}")
        self._closing[session_id] = task
        task.add_done_callback(lambda _: self._closing.pop(session_id, None))

    async def close(self) -> None:
        """Stops; rooms stay on Janus (kits may come back to them after a restart)."""
        closing = [*self._tasks, *self._closing.values()]
        if closing:
            await asyncio.wait(closing, timeout=5)
        for task in closing:
            task.cancel()
        await self.pool.close()

    # --- rooms ---------------------------------------------------------------------------

    async def _admit(self, session_id: str, uid: str) -> JanusRoomAccess:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            if (closing := self._closing.get(session_id)) is not None:
                await asyncio.shield(closing)  # the old room goes before a new one comes
            room = self.rooms.get(session_id) or await self._place(session_id)
            token = room.tokens.get(uid)
            if token is None:
                token = secrets.token_urlsafe(24)
                try:
                    await self._allow(room, token)
                except JanusError as err:
                    if err.code != NO_SUCH_ROOM:
                        raise
                    # Janus restarted under a live session and forgot its room: a new one.
                    self._unplace(room)
                    room = await self._place(session_id)
                    try:
                        await self._allow(room, token)
                    except JanusError as again:
                        raise MediaServerUnavailable(f"the new room failed: {again}") from None
                room.tokens[uid] = token
                room.server.participants += 1
        return JanusRoomAccess(
            url=room.server.public_url,
            room=room.room_id,
            pin=room.pin,
            token=token,
            api_secret=room.server.api_secret,
        )

    async def _place(self, session_id: str) -> JanusRoom:
        """The session's room: found where it already is (after a restart), or made on the
        least loaded server that answers."""
        room_id, secret, pin = self._derive(session_id)
        failures: list[str] = []
        candidates = await self.pool.candidates()
        for server in candidates:
            with contextlib.suppress(JanusError, OSError, TimeoutError):
                reply = await server.request({"request": "exists", "room": room_id})
                if reply.data.get("exists"):
                    log.info("session %s: room %d found on %s", session_id, room_id, server.url)
                    return self._placed(JanusRoom(session_id, server, room_id, secret, pin))
        for server in candidates:
            try:
                await server.request(
                    {
                        "request": "create",
                        "room": room_id,
                        "description": f"callbox {session_id}"[:100],
                        "secret": secret,
                        "pin": pin,
                        "is_private": True,
                        "allowed": [],
                        "require_pvtid": True,
                        "publishers": MAX_PUBLISHERS,
                        "bitrate": ROOM_BITRATE,
                        "fir_freq": 10,
                        "audiocodec": "opus",
                        "videocodec": "vp8,h264",
                        "notify_joining": True,
                    }
                )
            except JanusError as err:
                if err.code != ROOM_ALREADY_EXISTS:
                    if isinstance(err, JanusGone):
                        server.mark_down(err.reason)
                    failures.append(f"{server.url}: {err}")
                    continue
            except (OSError, TimeoutError) as err:
                server.mark_down(str(err))
                failures.append(f"{server.url}: {err}")
                continue
            log.info("session %s: room %d on %s", session_id, room_id, server.url)
            return self._placed(JanusRoom(session_id, server, room_id, secret, pin))
        raise MediaServerUnavailable(
            "no media server could host the call: " + ("; ".join(failures) or "none configured")
        )

    def _placed(self, room: JanusRoom) -> JanusRoom:
        room.server.rooms += 1
        self.rooms[room.session_id] = room
        return room

    def _unplace(self, room: JanusRoom) -> None:
        if self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]
            room.server.rooms -= 1
            room.server.participants -= len(room.tokens)

    async def _allow(self, room: JanusRoom, token: str) -> None:
        """Adds ``token`` to the room's allowed list; a room Janus does not know raises
        ``JanusError`` (NO_SUCH_ROOM), any other failure ``MediaServerUnavailable``."""
        try:
            await room.server.request(
                {
                    "request": "allowed",
                    "room": room.room_id,
                    "secret": room.secret,
                    "action": "add",
                    "allowed": [token],
                }
            )
        except JanusError as err:
            if err.code == NO_SUCH_ROOM:
                raise
            if isinstance(err, JanusGone):
                room.server.mark_down(err.reason)
            raise MediaServerUnavailable(f"the call's media server refused: {err}") from None
        except (OSError, TimeoutError) as err:
            room.server.mark_down(str(err))
            raise MediaServerUnavailable(f"the call's media server is away: {err}") from None

    def _derive(self, session_id: str) -> tuple[int, str, str]:
        if self._secret is None:
            raise RuntimeError("Janus rooms have no secret yet: start the session server")

        key = self._secret

        def digest(purpose: str) -> bytes:
            return hmac.new(key, f"{purpose}:{session_id}".encode(), hashlib.sha256).digest()

        # Below 2**53: JSON numbers stay exact in every client.
        room_id = int.from_bytes(digest("room")[:6], "big") + 1
        secret = base64.urlsafe_b64encode(digest("secret")[:18]).decode()
        pin = base64.urlsafe_b64encode(digest("pin")[:12]).decode()
        return room_id, secret, pin

    async def _revoke(self, room: JanusRoom, uid: str, token: str) -> None:
        with contextlib.suppress(JanusError, OSError, TimeoutError):
            await room.server.request(
                {
                    "request": "allowed",
                    "room": room.room_id,
                    "secret": room.secret,
                    "action": "remove",
                    "allowed": [token],
                }
            )
            listed = await room.server.request(
                {"request": "listparticipants", "room": room.room_id}
            )
            for participant in listed.data.get("participants") or []:
                if uid in room.tokens:
                    return  # back already (a new token): its new feed stays
                if isinstance(participant, dict) and participant.get("display") == uid:
                    await room.server.request(
                        {
                            "request": "kick",
                            "room": room.room_id,
                            "secret": room.secret,
                            "id": participant["id"],
                        }
                    )

    async def _destroy(self, room: JanusRoom) -> None:
        try:
            await room.server.request(
                {"request": "destroy", "room": room.room_id, "secret": room.secret}
            )
            log.info("session %s: room %d destroyed", room.session_id, room.room_id)
        except JanusError as err:
            if err.code != NO_SUCH_ROOM:
                log.warning("session %s: could not destroy its room: %s", room.session_id, err)
        except (OSError, TimeoutError) as err:
            log.warning("session %s: could not destroy its room: %s", room.session_id, err)

    def _forget_unless_member(self, session_id: str, uid: str) -> None:
        """A join that failed after its token was added: take the token back, and the
        room too if the session never came to be."""
        if uid in {p.uid for p in self._rooms.participants(session_id)}:
            return
        if self._rooms.is_live(session_id):
            self.member_left(session_id, uid)
        else:
            self.session_over(session_id)
