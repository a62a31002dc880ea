"""Peer-to-peer media (a mesh): one aiortc connection per other participant, negotiated
through the session server's signal relay. Right for two to four kits: each kit encodes and
sends its camera once per peer.

The mesh watches its connections once a second (``WATCH_INTERVAL``): a connection that stops
carrying media is replaced by a new one (``Peer``: an ICE restart) while signaling works, and
when nothing at all has arrived from any participant for ``GIVE_UP_AFTER`` seconds the kit
is cut off: ``on_failed`` ends the call, with or without the session server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCIceServer

from appliance.media.backend import OnFailed, OnTrack
from appliance.media.counters import MediaCounters
from appliance.media.local import LocalMedia, Warn
from appliance.media.peer import Health, LinkStats, Peer
from appliance.signaling.messages import Candidate, Description, SignalIn, SignalOut
from appliance.tasks import TaskSet

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0
GIVE_UP_AFTER = 30.0  # seconds without media from anyone: the call cannot come back

SendSignal = Callable[[SignalOut], Awaitable[None]]
OnHealth = Callable[[str, Health], None]  # (participant uid, its connection's new health)


class MeshMedia:
    def __init__(
        self,
        *,
        me: str,
        local: LocalMedia,
        send: SendSignal,
        can_signal: Callable[[], bool],
        on_track: OnTrack,
        on_health: OnHealth,
        on_failed: OnFailed,
        warn: Warn,
        ice_servers: list[RTCIceServer],
        video_codec: str | None,
        counters: MediaCounters | None = None,
    ) -> None:
        self._me = me
        self._counters = counters if counters is not None else MediaCounters()
        self._local = local
        self._send = send
        self._can_signal = can_signal
        self._on_track = on_track
        self._on_health = on_health
        self._on_failed = on_failed
        self._warn = warn
        self._ice_servers = ice_servers
        self._video_codec = video_codec
        self._video = False
        self._members: set[str] = set()
        self.peers: dict[str, Peer] = {}
        self._tasks = TaskSet(log)
        self._watcher: asyncio.Task[None] | None = None
        self._failed = False

    async def start(self, *, video: bool) -> None:
        """Nothing to connect yet (each peer connects when it is added): start watching."""
        self._video = video
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="mesh watch")

    def add_participant(self, uid: str, *, offerer: bool, video: bool) -> None:
        self._members.add(uid)
        peer = self._make_peer(uid, offerer=offerer, video=video)
        if offerer:
            self._tasks.spawn(peer.start(video=video), f"offer to {uid}")

    async def remove_participant(self, uid: str) -> None:
        self._members.discard(uid)
        peer = self.peers.pop(uid, None)
        if peer is not None:
            await peer.close()

    async def handle_signal(self, message: SignalIn) -> None:
        peer = self.peers.get(message.from_)
        if peer is None:
            if message.from_ not in self._members:
                log.warning("signal from %s, who is not in the session", message.from_)
                return
            peer = self._make_peer(message.from_, offerer=False, video=self._video)
        try:
            await peer.handle(message.description, message.candidate)
        except Exception as err:  # a malformed SDP from one peer must not end the call
            log.warning("bad signal from %s: %s", message.from_, err)
            self._warn("bad-signal", "network", f"{message.from_}: {err}")

    async def enable_video(self) -> None:
        self._video = True
        for peer in self.peers.values():
            self._tasks.spawn(peer.add_video(), f"video to {peer.uid}")

    async def close(self) -> None:
        self._tasks.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await asyncio.gather(*(peer.close() for peer in self.peers.values()))
        self.peers.clear()

    # --- what the session asks -----------------------------------------------------------

    @property
    def peer_to_peer(self) -> bool:
        return True

    def links(self) -> dict[str, LinkStats]:
        return {uid: peer.stats() for uid, peer in self.peers.items()}

    def receiving_from(self, uid: str) -> bool:
        peer = self.peers.get(uid)
        return (
            peer is not None
            and peer.health == Health.CONNECTED
            and peer.state not in ("failed", "closed")  # the far side closed it just now
        )

    def signaling_restored(self) -> None:
        """Signaling is back (we rejoined): offers sent while it was away may be lost, so
        every interrupted connection is renewed now rather than at its next deadline."""
        for peer in list(self.peers.values()):
            if peer.health == Health.INTERRUPTED:
                self._tasks.spawn(peer.restart(), f"restart {peer.uid}")

    # --- watching ------------------------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for peer in list(self.peers.values()):
                try:
                    await peer.check(loop.time(), can_signal=self._can_signal())
                except Exception:  # one broken connection must not stop the others' care
                    log.exception("connection to %s: check failed", peer.uid)
            self._give_up_if_cut_off(loop.time())

    def _give_up_if_cut_off(self, now: float) -> None:
        if self._failed or not self.peers:
            return
        silence = min(peer.silent_for(now) for peer in self.peers.values())
        if silence >= GIVE_UP_AFTER:
            self._failed = True
            self._on_failed(f"no media from anyone for {silence:.0f} s: the network is down")

    def _make_peer(self, uid: str, *, offerer: bool, video: bool) -> Peer:
        async def send(description: Description | None, candidate: Candidate | None) -> None:
            await self._send(
                SignalOut(type="signal", to=uid, description=description, candidate=candidate)
            )

        peer = Peer(
            uid,
            me=self._me,
            offerer=offerer,
            local=self._local,
            send=send,
            on_track=self._on_track,
            on_health=self._on_health,
            ice_servers=list(self._ice_servers),
            video_codec=self._video_codec,
            video=video,
            counters=self._counters,
        )
        self.peers[uid] = peer
        return peer
