"""Peer-to-peer media (a mesh): one aiortc connection per other participant, negotiated
through the session server's signal relay. Right for two to four kits: each kit encodes and
sends its camera once per peer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiortc import RTCIceServer

from appliance.media.backend import OnTrack
from appliance.media.local import LocalMedia, Warn
from appliance.media.peer import Peer
from appliance.signaling.messages import Candidate, Description, SignalIn, SignalOut

log = logging.getLogger(__name__)

SendSignal = Callable[[SignalOut], Awaitable[None]]


class MeshMedia:
    def __init__(
        self,
        *,
        local: LocalMedia,
        send: SendSignal,
        on_track: OnTrack,
        warn: Warn,
        ice_servers: list[RTCIceServer],
        video_codec: str | None,
    ) -> None:
        self._local = local
        self._send = send
        self._on_track = on_track
        self._warn = warn
        self._ice_servers = ice_servers
        self._video_codec = video_codec
        self._members: set[str] = set()
        self.peers: dict[str, Peer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, *, video: bool) -> None:
        """Nothing to connect: each peer connects when it is added."""

    def add_participant(self, uid: str, *, offerer: bool, video: bool) -> None:
        self._members.add(uid)
        peer = self._make_peer(uid, offerer=offerer)
        if offerer:
            self._spawn(peer.start(video=video), f"offer to {uid}")

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
            peer = self._make_peer(message.from_, offerer=False)
        try:
            await peer.handle(message.description, message.candidate)
        except Exception as err:  # a malformed SDP from one peer must not end the call
            log.warning("bad signal from %s: %s", message.from_, err)
            self._warn("bad-signal", "network", f"{message.from_}: {err}")

    async def enable_video(self) -> None:
        for peer in self.peers.values():
            if peer.offerer:
                self._spawn(peer.add_video(), f"video to {peer.uid}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(peer.close() for peer in self.peers.values()))
        self.peers.clear()

    def _make_peer(self, uid: str, *, offerer: bool) -> Peer:
        async def send(description: Description | None, candidate: Candidate | None) -> None:
            await self._send(
                SignalOut(type="signal", to=uid, description=description, candidate=candidate)
            )

        peer = Peer(
            uid,
            offerer=offerer,
            local=self._local,
            send=send,
            on_track=self._on_track,
            on_state=self._on_peer_state,
            ice_servers=list(self._ice_servers),
            video_codec=self._video_codec,
        )
        self.peers[uid] = peer
        return peer

    def _on_peer_state(self, uid: str, state: str) -> None:
        log.info("connection to %s is %s", uid, state)
        if state == "failed":
            self._warn("peer-failed", "network", f"the media connection to {uid} failed")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())
