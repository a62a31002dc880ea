"""What the kit receives from one publisher of a Janus VideoRoom: one subscriber handle and
one receive-only PeerConnection per feed.

Janus 1.x could put every feed on one multistream subscription, but it reuses the m-line of
a stream that went for the next one, with a new SSRC, and aiortc routes packets by the
SSRCs a receiver started with: a reused m-line would stay silent. A subscription per feed
never reuses an m-line, and its streams (one audio, one video) bundle cleanly.

``want`` says which of the feed's streams to receive (by the publisher's mid); a worker task
turns the difference into ``join``/``update`` requests. Janus answers each change with an
offer (``attached``/``updated``) that lists which of our mids carries which stream; after
each offer every stream's track is handed on under its publisher's uid, when that changed.
Offers and requests are handled one at a time by the worker, in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from appliance.media.backend import OnTrack
from appliance.media.consent import keep_consent_patiently
from appliance.media.datagrams import read_all_waiting
from appliance.media.janus.api import (
    JanusError,
    JanusHandle,
    JanusSession,
    PluginReply,
    jsep_of,
    plugin_reply,
)
from appliance.media.local import Warn
from appliance.media.receive import tune_receivers

log = logging.getLogger(__name__)

StreamKey = tuple[int, str]  # (publisher feed id, the publisher's mid)


@dataclass(frozen=True)
class SubscribedStream:
    mid: str  # the m-line in our subscription
    feed_id: int
    feed_mid: str
    kind: str


class Subscription:
    def __init__(
        self,
        session: JanusSession,
        *,
        room: int,
        pin: str,
        private_id: int,
        on_track: OnTrack,
        ice_servers: list[RTCIceServer],
        warn: Warn,
    ) -> None:
        self._session = session
        self._warn = warn
        self._room = room
        self._pin = pin
        self._private_id = private_id
        self._on_track = on_track
        self._ice_servers = ice_servers
        self._wanted: dict[StreamKey, str] = {}  # stream -> uid
        self._asked: set[StreamKey] = set()  # what we asked Janus for, by now
        self.streams: dict[str, SubscribedStream] = {}  # by our mid, as Janus last said
        self._bound: dict[str, tuple[str, MediaStreamTrack]] = {}
        self._events: deque[PluginReply] = deque()
        self._wake = asyncio.Event()
        self.handle: JanusHandle | None = None
        self.pc: RTCPeerConnection | None = None
        self._closed = False
        self._worker = asyncio.create_task(self._work(), name="janus subscription")

    def want(self, streams: dict[StreamKey, str]) -> None:
        """Receive exactly these publisher streams (each with its publisher's uid)."""
        if streams != self._wanted:
            self._wanted = dict(streams)
            self._wake.set()

    async def close(self) -> None:
        self._closed = True
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        if self.pc is not None:
            await self.pc.close()
        if self.handle is not None and self._session.lost is None:
            await self.handle.detach()

    # --- the worker ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while self._events:
                    await self._apply(self._events.popleft())
                await self._reconcile()
            except Exception as err:
                # The session's loss is reported by the session; anything else (a refusal,
                # an offer aiortc cannot take) only costs this change, and the next one
                # starts again from what Janus last said.
                if isinstance(err, JanusError):
                    log.warning("subscription update failed: %s", err)
                else:
                    log.warning("subscription update failed", exc_info=err)
                self._asked = {(s.feed_id, s.feed_mid) for s in self.streams.values()}

    async def _reconcile(self) -> None:
        wanted = set(self._wanted)
        present = {(s.feed_id, s.feed_mid) for s in self.streams.values()}
        add = sorted(wanted - self._asked)
        # Janus drops the streams of a publisher that went by itself; only ask it to drop
        # what it still sends.
        remove = sorted((self._asked - wanted) & present)
        self._asked = wanted
        if not add and not remove:
            return
        if self.handle is None:
            if not add:
                return
            self.handle = await self._session.attach()
            self.handle.on_event(self._on_event)
            reply = await self.handle.message(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self._room,
                    "pin": self._pin,
                    "private_id": self._private_id,
                    "streams": [{"feed": feed, "mid": mid} for feed, mid in add],
                }
            )
        else:
            body: dict[str, Any] = {"request": "update"}
            if add:
                body["subscribe"] = [{"feed": feed, "mid": mid} for feed, mid in add]
            if remove:
                body["unsubscribe"] = [{"feed": feed, "mid": mid} for feed, mid in remove]
            reply = await self.handle.message(body)
        await self._apply(reply)

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        if kind == "event":
            try:
                self._events.append(plugin_reply(message))
            except JanusError as err:
                log.warning("subscription: %s", err)
                return
            self._wake.set()
        elif kind == "hangup" and not self._closed:
            log.warning("Janus hung up the subscription: %s", message.get("reason"))

    async def _apply(self, reply: PluginReply) -> None:
        """One answer or event from Janus: the subscription's streams, maybe an offer."""
        streams = reply.data.get("streams")
        if reply.data.get("videoroom") in ("attached", "updated") and isinstance(streams, list):
            self.streams = _parse_streams(streams)
        jsep = reply.jsep
        if jsep is not None and jsep.get("type") == "offer":
            await self._answer(jsep["sdp"])
        self._bind()

    async def _answer(self, offer: str) -> None:
        assert self.handle is not None
        if self.pc is None:
            # Janus bundles every stream on one transport: so does max-bundle, from the
            # start. (aiortc's balanced policy mis-bundles a second m-line of one kind.)
            self.pc = RTCPeerConnection(
                RTCConfiguration(
                    iceServers=list(self._ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
                )
            )
            self.pc.on("connectionstatechange", self._state_changed)
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        keep_consent_patiently(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        # Its sockets are gathered now. All of a feed's media comes in on one of them.
        read_all_waiting(pc)
        await self.handle.message({"request": "start"}, jsep_of(pc.localDescription))

    def _state_changed(self) -> None:
        if self.pc is None:
            return
        state = self.pc.connectionState
        log.info("subscription is %s", state)
        if state == "failed" and not self._closed:
            uids = ", ".join(sorted(set(self._wanted.values()))) or "a participant"
            self._warn("media-failed", "network", f"the connection from Janus for {uids} failed")

    def _bind(self) -> None:
        """Hands each stream's track on under its publisher's uid, when that changed."""
        if self.pc is None:
            return
        tune_receivers(self.pc)
        receivers = {t.mid: t.receiver for t in self.pc.getTransceivers() if t.mid is not None}
        live: set[str] = set()
        for mid, stream in self.streams.items():
            receiver = receivers.get(mid)
            track = receiver.track if receiver is not None else None
            uid = self._wanted.get((stream.feed_id, stream.feed_mid))
            if track is None or uid is None:
                continue
            live.add(mid)
            if self._bound.get(mid) != (uid, track):
                self._bound[mid] = (uid, track)
                self._on_track(uid, track)
        for mid in [m for m in self._bound if m not in live]:
            del self._bound[mid]


def _parse_streams(streams: list[Any]) -> dict[str, SubscribedStream]:
    parsed = {}
    for stream in streams:
        if not isinstance(stream, dict) or stream.get("type") not in ("audio", "video"):
            continue
        if stream.get("active") is False or "feed_id" not in stream:
            continue
        mid = str(stream["mid"])
        parsed[mid] = SubscribedStream(
            mid=mid,
            feed_id=int(stream["feed_id"]),
            feed_mid=str(stream.get("feed_mid", "")),
            kind=str(stream["type"]),
        )
    return parsed
