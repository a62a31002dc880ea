"""``JanusRoomMedia``: a session's media through a Janus VideoRoom.

The kit publishes one stream (``Publisher``) and receives each other participant's on a
subscription of its own (``Subscription``), so it encodes and sends its camera once whatever
the room's size. Who takes part is still the session server's word: the call core adds and removes
participants here exactly as in a mesh, and only their published feeds are received. A
feed is matched to its participant by the VideoRoom ``display``, which every kit sets to
its uid.

A Janus that stops, restarts or forgets our session ends the call through ``on_failed``,
once, unless the kit itself is closing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import RTCIceServer

from appliance.media.backend import MediaUnavailable, OnFailed, OnTrack
from appliance.media.janus.api import (
    JanusConnection,
    JanusError,
    JanusSession,
    plugin_reply,
)
from appliance.media.janus.publisher import Publisher
from appliance.media.janus.subscription import StreamKey, Subscription
from appliance.media.local import LocalMedia, Warn
from appliance.signaling.messages import JanusRoomAccess, SignalIn

if TYPE_CHECKING:
    from appliance.media.peer import LinkStats, Peer

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 3.0
ROOM_CLOSED_GRACE = 3.0  # seconds for the session server's word after Janus closed the room


@dataclass
class Feed:
    """A publisher in the room, as Janus last described it."""

    id: int
    uid: str
    streams: dict[str, str] = field(default_factory=dict)  # its mid -> audio | video
    seen: int = 0  # when it was (re)announced: a uid's newest feed is the one that counts


class JanusRoomMedia:
    def __init__(
        self,
        access: JanusRoomAccess,
        *,
        uid: str,
        local: LocalMedia,
        on_track: OnTrack,
        on_failed: OnFailed,
        warn: Warn,
        ice_servers: list[RTCIceServer],
        video_codec: str | None,
    ) -> None:
        self.access = access
        self._uid = uid
        self._local = local
        self._on_track = on_track
        self._on_failed = on_failed
        self._warn = warn
        self._ice_servers = ice_servers
        self._video_codec = video_codec
        self._members: set[str] = set()
        self.feeds: dict[int, Feed] = {}
        self._announcements = itertools.count(1)
        self.connection: JanusConnection | None = None
        self.session: JanusSession | None = None
        self.publisher: Publisher | None = None
        self.subscriptions: dict[int, Subscription] = {}  # by feed id
        self._closing_tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._failed = False

    # --- MediaBackend --------------------------------------------------------------------

    async def start(self, *, video: bool) -> None:
        try:
            await self._start(video)
        except Exception as err:
            if not isinstance(err, JanusError | OSError | TimeoutError):
                log.warning("joining the media room failed", exc_info=err)
            await self.close()
            raise MediaUnavailable(f"the call's media server ({self.access.url}): {err}") from None

    async def _start(self, video: bool) -> None:
        access = self.access
        self.connection = await JanusConnection.open(access.url, api_secret=access.api_secret)
        self.connection.on_lost(self._lost)
        self.session = await self.connection.create_session()
        self.session.on_lost(self._lost)
        handle = await self.session.attach()
        handle.on_event(self._publisher_event)
        self.publisher = Publisher(
            handle,
            access,
            uid=self._uid,
            local=self._local,
            ice_servers=self._ice_servers,
            video_codec=self._video_codec,
            warn=self._warn,
        )
        for publisher in await self.publisher.join():
            self._announced(publisher)
        await self.publisher.publish(video=video)
        self._update_subscriptions()

    def add_participant(self, uid: str, *, offerer: bool, video: bool) -> None:
        self._members.add(uid)
        self._update_subscriptions()

    async def remove_participant(self, uid: str) -> None:
        self._members.discard(uid)
        self._update_subscriptions()

    async def handle_signal(self, message: SignalIn) -> None:
        # Nobody should send us peer-to-peer offers in a room on Janus (a browser guest
        # could): there is no peer connection to give them to.
        log.warning("ignored a peer-to-peer signal from %s: this call runs on Janus", message.from_)

    async def enable_video(self) -> None:
        if self.publisher is None:
            return
        try:
            await self.publisher.add_video()
        except JanusError as err:
            self._warn("media-server-refused", "network", f"cannot add video: {err.reason}")

    async def close(self) -> None:
        self._closing = True
        parts: list[Any] = [*self.subscriptions.values(), self.publisher]
        self.subscriptions.clear()
        for part in parts:
            if part is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(part.close(), CLOSE_TIMEOUT)
        if self._closing_tasks:
            await asyncio.wait(self._closing_tasks, timeout=CLOSE_TIMEOUT)
        if self.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.destroy(), CLOSE_TIMEOUT)
        if self.connection is not None:
            await self.connection.close()

    # The media server carries the streams: no connection to another kit to watch or renew.

    @property
    def peer_to_peer(self) -> bool:
        return False

    @property
    def peers(self) -> dict[str, Peer]:
        return {}

    def links(self) -> dict[str, LinkStats]:
        return {}

    def receiving_from(self, uid: str) -> bool:
        return False

    def signaling_restored(self) -> None:
        pass

    # --- the room ------------------------------------------------------------------------

    def wanted_streams(self) -> dict[StreamKey, str]:
        """The publisher streams to receive: each member's newest feed, all of it."""
        newest: dict[str, Feed] = {}
        for feed in self.feeds.values():
            if feed.uid not in self._members:
                continue
            if feed.uid not in newest or feed.seen > newest[feed.uid].seen:
                newest[feed.uid] = feed
        return {(feed.id, mid): feed.uid for feed in newest.values() for mid in feed.streams}

    def _update_subscriptions(self) -> None:
        """One subscription per wanted feed; those no longer wanted close."""
        publisher = self.publisher
        if self.session is None or publisher is None or publisher.private_id is None:
            return  # not in the room yet: start() subscribes once it is
        if self._closing:
            return
        by_feed: dict[int, dict[StreamKey, str]] = {}
        for key, uid in self.wanted_streams().items():
            by_feed.setdefault(key[0], {})[key] = uid
        for feed_id in [f for f in self.subscriptions if f not in by_feed]:
            task = asyncio.create_task(self.subscriptions.pop(feed_id).close())
            self._closing_tasks.add(task)
            task.add_done_callback(self._closing_tasks.discard)
        for feed_id, streams in by_feed.items():
            subscription = self.subscriptions.get(feed_id)
            if subscription is None:
                subscription = Subscription(
                    self.session,
                    room=self.access.room,
                    pin=self.access.pin,
                    private_id=publisher.private_id,
                    on_track=self._on_track,
                    ice_servers=self._ice_servers,
                    warn=self._warn,
                )
                self.subscriptions[feed_id] = subscription
            subscription.want(streams)

    def _announced(self, publisher: dict[str, Any]) -> None:
        try:
            feed_id = int(publisher["id"])
        except (KeyError, TypeError, ValueError):
            return
        if self.publisher is not None and feed_id == self.publisher.feed_id:
            return
        streams = {
            str(s["mid"]): str(s["type"])
            for s in publisher.get("streams") or []
            if isinstance(s, dict)
            and s.get("type") in ("audio", "video")
            and not s.get("disabled")
            and "mid" in s
        }
        uid = str(publisher.get("display", ""))
        self.feeds[feed_id] = Feed(feed_id, uid, streams, next(self._announcements))

    def _publisher_event(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        if kind == "hangup":
            if not self._closing:
                self._lost(f"Janus hung up our stream ({message.get('reason', 'no reason')})")
            return
        if kind != "event":
            return
        try:
            data = plugin_reply(message).data
        except JanusError as err:
            log.warning("the media room says: %s", err.reason)
            return
        if data.get("videoroom") == "destroyed":
            # The session server closes the room when the session is over, and says so
            # itself (which ends the call as a hang-up would); only if it does not is the
            # room's end the media server's doing.
            asyncio.get_running_loop().call_later(
                ROOM_CLOSED_GRACE, self._lost, "the call's media room was closed"
            )
            return
        for publisher in data.get("publishers") or []:
            if isinstance(publisher, dict):
                self._announced(publisher)
        own = self.publisher.feed_id if self.publisher is not None else None
        if data.get("reason") == "kicked" or (own is not None and data.get("kicked") == own):
            self._lost("the media server removed us from the room")
            return
        for key in ("unpublished", "leaving", "kicked"):
            gone = data.get(key)
            if isinstance(gone, int) and not isinstance(gone, bool):
                self.feeds.pop(gone, None)
        self._update_subscriptions()

    def _lost(self, reason: str) -> None:
        if self._closing or self._failed:
            return
        self._failed = True
        log.warning("lost the media server: %s", reason)
        self._on_failed(reason)
