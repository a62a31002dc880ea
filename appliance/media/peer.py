"""The WebRTC connection to one other participant of a mesh call, kept alive.

For each pair of kits the newcomer offers and the one already there answers; later
renegotiations (audio call upgraded to video) come from the side that made the current
connection's offer, so two offers never cross.

A connection that stops carrying anything (nothing at all arrives for ``STALL_AFTER``
seconds: the far side sends RTCP reports every second even when muted with its camera off,
so silence means the path is gone) or whose ICE or DTLS fails is replaced: a fresh
``RTCPeerConnection`` with new ICE credentials and candidates and the same local tracks,
negotiated through the session server. That is our ICE restart (aiortc cannot restart ICE
on a live connection). Either side may start one, and does again after ``ATTEMPT_TIMEOUT``
seconds until media flows (twice as long after each that never carried any, up to four
times; counted from when the connection is negotiated, and an offer waits up to
``ANSWER_TIMEOUT`` for its answer), but only while its signaling works. Each new connection's
descriptions carry a higher ``generation``, so an answer to a superseded offer is dropped,
and when both sides offer at once the higher generation wins, then the lower uid.
The side that receives a new connection's offer replaces its own at once.

When the kit's camera encodes H.264 itself, H.264 goes first in the codec preferences, so
any peer that can take it gets the camera's packets as they are; a peer that cannot ends up
on VP8 and gets frames. Each video sender tells its OutgoingVideo the codec it started with,
and passes PLI/FIR on to it, since aiortc only forwards those to its own encoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from appliance.media.consent import keep_consent_patiently
from appliance.media.counters import MediaCounters
from appliance.media.datagrams import read_all_waiting
from appliance.media.h264_levels import KIT_LEVEL, declare_level
from appliance.media.local import LocalMedia
from appliance.media.outgoing import follow_sender
from appliance.media.outgoing_audio import follow_audio_sender
from appliance.media.receive import tune_receivers
from appliance.signaling.messages import Candidate, Description

log = logging.getLogger(__name__)

STALL_AFTER = 4.0  # seconds with nothing received: the connection is interrupted
ATTEMPT_TIMEOUT = 6.0  # seconds a new connection has to start carrying media
# Each connection in a row that never carried media gives the next one twice as long (6, 12,
# 24 s): a slow CPU that needs more than 6 s to connect would otherwise restart every
# attempt before it is up, for good (the emulator did, one start in a few).
ATTEMPT_DOUBLINGS = 2
ATTEMPT_JITTER = 0.2  # +-20 %, so two sides retrying do not keep colliding
# An offer waits this long for its answer before the attempt counts as failed; the attempt's
# own time starts once the answer is in (or, answering, sent). Signaling is reliable (a
# reconnection renews every interrupted connection), and a busy far kit can take long to
# answer: the emulator took 17 s, and a 6 s attempt restarted before the answer came.
ANSWER_TIMEOUT = 20.0

SendSignal = Callable[[Description | None, Candidate | None], Awaitable[None]]


class Health(StrEnum):
    CONNECTING = "connecting"  # no media yet from this participant
    CONNECTED = "connected"  # media arriving
    INTERRUPTED = "interrupted"  # media stopped; new connections are being tried


@dataclass(frozen=True)
class LinkStats:
    """What the connection to one participant carries, across its restarts."""

    state: Health
    restarts: int  # connections replaced by new ones that carry media (ICE restarts)
    packets_received: int  # everything that arrived: RTP, RTCP
    packets_lost: int  # RTP packets the far side sent that never arrived
    last_received: float | None  # loop time of the last packet, if any
    bitrate_in: float = 0.0  # bits a second arriving, over the last check's interval
    bitrate_out: float = 0.0  # bits a second leaving


@dataclass
class _Counters:
    """One connection's transport counters, read from aiortc's stats."""

    received: int = 0
    lost: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0


class Peer:
    def __init__(
        self,
        uid: str,
        *,
        me: str,
        offerer: bool,
        local: LocalMedia,
        send: SendSignal,
        on_track: Callable[[str, MediaStreamTrack], None],
        on_health: Callable[[str, Health], None],
        ice_servers: list[RTCIceServer] | None = None,
        video_codec: str | None = None,
        video: bool = False,
        counters: MediaCounters | None = None,
    ) -> None:
        self.uid = uid
        self._totals = counters if counters is not None else MediaCounters()
        self._bitrates = (0.0, 0.0)  # (in, out) over the last check's interval
        self._checked_at: float | None = None
        self.offerer = offerer  # we made (or will make) the current connection's offer
        self._me = me
        self._local = local
        self._send = send
        self._on_track = on_track
        self._on_health = on_health
        self._ice_servers = ice_servers or []
        self._video_codec = video_codec
        self._video = video
        self._lock = asyncio.Lock()
        self._closed = False
        self.pc: RTCPeerConnection | None = None  # the current connection
        self.generation = 0  # of the current connection
        self._highest_generation = 0  # seen from either side
        self._awaiting_answer = False
        self._remote_ufrag: str | None = None
        self.health = Health.CONNECTING
        self.restarts = 0  # new connections that went on to carry media
        self._carried: int | None = None  # the generation media last came on
        loop = asyncio.get_running_loop()
        self._created = loop.time()
        self._pc_since = self._created  # when the current connection was made
        self._unanswered = 0  # connections in a row that never carried media
        self._deadline = self._created + attempt_timeout(0)  # for the current connection
        self._last_received: float | None = None
        self._counters = _Counters()  # the current connection's
        self._earlier = _Counters()  # the replaced connections', summed

    @property
    def state(self) -> str:
        return str(self.pc.connectionState) if self.pc is not None else "new"

    def stats(self) -> LinkStats:
        return LinkStats(
            state=self.health,
            restarts=self.restarts,
            packets_received=self._earlier.received + self._counters.received,
            packets_lost=self._earlier.lost + self._counters.lost,
            last_received=self._last_received,
            bitrate_in=self._bitrates[0],
            bitrate_out=self._bitrates[1],
        )

    def silent_for(self, now: float) -> float:
        """Seconds since anything arrived from this participant (or since we met)."""
        return now - (self._last_received if self._last_received is not None else self._created)

    # --- negotiation entry points --------------------------------------------------------

    async def start(self, *, video: bool) -> None:
        """Offerer only: make the first connection and send its offer."""
        self._video = video
        async with self._lock:
            if self.pc is None and not self._closed:
                await self._connect_as_offerer(0)

    async def add_video(self) -> None:
        """The call became a video call: whoever made the current connection's offer
        renegotiates it with a video line; every later connection has one."""
        self._video = True
        if not self.offerer or self._closed:
            return
        async with self._lock:
            pc = self.pc
            if pc is None or any(t.kind == "video" for t in pc.getTransceivers()):
                return
            if pc.signalingState != "stable":  # an offer is out: the next one has video
                return
            self._add_video(pc)
            await self._offer(pc)

    async def handle(self, description: Description | None, candidate: Candidate | None) -> None:
        async with self._lock:
            if self._closed:
                return
            if description is not None:
                await self._on_description(description)
            if candidate is not None and candidate.candidate and self.pc is not None:
                ice = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
                ice.sdpMid = candidate.sdpMid
                ice.sdpMLineIndex = candidate.sdpMLineIndex
                await self.pc.addIceCandidate(ice)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            pc, self.pc = self.pc, None
            if pc is not None:
                await _retire(pc)

    # --- keeping it alive ----------------------------------------------------------------

    async def check(self, now: float, *, can_signal: bool) -> None:
        """Called every second or so: reads what arrived, tells health changes, and
        replaces the connection when it has stopped and signaling can carry an offer."""
        if self._closed or self._lock.locked():
            return  # a negotiation is under way: judge its outcome next time
        pc = self.pc
        if pc is not None and pc.connectionState != "closed":
            counters = await _read_counters(pc)
            if pc is not self.pc:
                return  # replaced meanwhile (the far side's offer): judge it next time
            if counters.received > self._counters.received:
                self._last_received = now
            self._count_bytes(counters, now)
            self._counters = counters
        receiving = (
            pc is not None
            and pc.connectionState == "connected"
            and self._last_received is not None
            and now - self._last_received < STALL_AFTER
            and self._counters.received > 0
        )
        if receiving:
            if self._carried is not None and self._carried != self.generation:
                self.restarts += 1  # a new connection carries the media now
                self._totals.ice_restarts += 1
            self._carried = self.generation
            self._unanswered = 0
            self._deadline = now + attempt_timeout(0)
            self._set_health(Health.CONNECTED)
            return
        if self.health == Health.CONNECTED:
            self._set_health(Health.INTERRUPTED)
            if self._last_received is not None and self._pc_since <= self._last_received:
                self._deadline = now  # the connection media came on stopped: renew it now
            # else a new one (the far side's restart) is being set up: give it its time
        failed = pc is not None and pc.connectionState in ("failed", "closed")
        if failed and not self._awaiting_answer:
            self._deadline = min(self._deadline, now)
        if now >= self._deadline and can_signal:
            await self.restart(unless_replaced_since=self.generation)

    def _count_bytes(self, counters: _Counters, now: float) -> None:
        """Adds what the current connection carried since the last check to the kit's
        totals, and sets the bitrates over that interval."""
        received = max(0, counters.bytes_received - self._counters.bytes_received)
        sent = max(0, counters.bytes_sent - self._counters.bytes_sent)
        self._totals.bytes_received += received
        self._totals.bytes_sent += sent
        last, self._checked_at = self._checked_at, now
        if last is not None and now > last:
            self._bitrates = (received * 8 / (now - last), sent * 8 / (now - last))

    async def restart(self, *, unless_replaced_since: int | None = None) -> None:
        """Replace the connection with a fresh one and offer it (an ICE restart); not if
        it is no longer connection ``unless_replaced_since`` by then."""
        async with self._lock:
            if self._closed or unless_replaced_since not in (None, self.generation):
                return
            generation = max(self.generation, self._highest_generation) + 1
            log.info("connection to %s: restarting (connection %d)", self.uid, generation)
            await self._connect_as_offerer(generation)

    def _set_health(self, health: Health) -> None:
        if health != self.health:
            self.health = health
            self._on_health(self.uid, health)

    # --- connections ---------------------------------------------------------------------

    async def _replace(self, generation: int, *, offerer: bool) -> RTCPeerConnection:
        old, self.pc = self.pc, None
        if old is not None:
            if self._carried != self.generation:
                self._unanswered += 1  # the one replaced never carried media
            self._earlier.received += self._counters.received
            self._earlier.lost += self._counters.lost
            await _retire(old)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
        pc.on("track", lambda track: self._track_arrived(pc, track))
        pc.on("connectionstatechange", lambda: self._state_changed(pc))
        self.pc = pc
        self.generation = generation
        self._highest_generation = max(self._highest_generation, generation)
        self.offerer = offerer
        self._awaiting_answer = False
        self._remote_ufrag = None
        self._counters = _Counters()
        self._pc_since = asyncio.get_running_loop().time()
        self._deadline = self._pc_since + attempt_timeout(self._unanswered)
        return pc

    async def _connect_as_offerer(self, generation: int) -> None:
        pc = await self._replace(generation, offerer=True)
        audio = self._local.audio_track()
        follow_audio_sender(pc.addTransceiver(audio, direction="sendrecv").sender, audio)
        if self._video:
            self._add_video(pc)
        try:
            await self._offer(pc)
        except ConnectionError as err:  # signaling went away: the next attempt offers again
            log.info("connection to %s: offer not sent: %s", self.uid, err)

    def _track_arrived(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        tune_receivers(pc)  # before media flows: our receive buffers in aiortc's place
        if pc is self.pc:
            self._on_track(self.uid, track)

    def _state_changed(self, pc: RTCPeerConnection) -> None:
        if pc is self.pc:
            log.info("connection to %s is %s", self.uid, pc.connectionState)

    def _add_video(self, pc: RTCPeerConnection) -> None:
        track = self._local.video_track()
        transceiver = pc.addTransceiver(track, direction="sendrecv")
        self._prefer_codec(transceiver)
        follow_sender(transceiver.sender, track, _remote_sdp(pc))

    def _prefer_codec(self, transceiver: object) -> None:
        codecs = RTCRtpSender.getCapabilities("video").codecs
        # Keep retransmission (rtx) for the chosen codecs: NACK recovery needs it.
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        if self._video_codec:
            wanted = f"video/{self._video_codec}".lower()
            preferred = [c for c in codecs if c.mimeType.lower() == wanted]
        elif self._local.prefers_h264:
            h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
            others = [c for c in codecs if c not in h264 and c not in rtx]
            preferred = h264 + others
        else:
            return
        transceiver.setCodecPreferences(preferred + rtx)  # type: ignore[attr-defined]

    async def _offer(self, pc: RTCPeerConnection) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        read_all_waiting(pc)  # its sockets are gathered now
        self._awaiting_answer = True
        await self._send_local_description(pc)
        self._deadline = max(self._deadline, self._now() + ANSWER_TIMEOUT)

    def _attempt_starts(self) -> None:
        """The connection is negotiated: it has its attempt's time from now to carry media."""
        self._deadline = self._now() + attempt_timeout(self._unanswered)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def _on_description(self, description: Description) -> None:
        if description.type == "answer":
            await self._on_answer(description)
            return
        generation = description.generation
        if generation is None:  # a browser: the connection it has, unless ICE changed
            generation = self.generation
        self._highest_generation = max(self._highest_generation, generation)
        pc = self.pc
        new_connection = (
            pc is None
            or generation != self.generation
            or _ice_ufrag(description.sdp) != self._remote_ufrag
        )
        if pc is not None and self._awaiting_answer and self._ours_wins(generation):
            log.info("connection to %s: both offered; ours stands", self.uid)
            return
        if new_connection or (pc is not None and pc.signalingState != "stable"):
            if pc is not None:
                log.info(
                    "connection to %s: replaced by its offer (connection %d)", self.uid, generation
                )
            pc = await self._replace(generation, offerer=False)
        assert pc is not None
        self._prepare_video_for(pc, description.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="offer"))
        keep_consent_patiently(pc)
        self._remote_ufrag = _ice_ufrag(description.sdp)
        for transceiver in pc.getTransceivers():
            if transceiver.sender.track is not None or transceiver.stopped:
                continue
            if transceiver.kind == "audio":
                audio = self._local.audio_track()
                transceiver.sender.replaceTrack(audio)
                follow_audio_sender(transceiver.sender, audio)
            elif transceiver.kind == "video":
                track = self._local.video_track()
                transceiver.sender.replaceTrack(track)
                self._prefer_codec(transceiver)
                follow_sender(transceiver.sender, track, _remote_sdp(pc))
            transceiver.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        read_all_waiting(pc)
        await self._send_local_description(pc)
        self._attempt_starts()

    def _ours_wins(self, theirs: int) -> bool:
        """Both sides offered: the higher generation goes on, then the lower uid's."""
        return (self.generation, self.uid) > (theirs, self._me)

    async def _on_answer(self, description: Description) -> None:
        pc = self.pc
        generation = description.generation
        if (
            pc is None
            or not self._awaiting_answer
            or pc.signalingState != "have-local-offer"
            or (generation is not None and generation != self.generation)
        ):
            log.info(
                "connection to %s: dropped an answer for connection %s (ours is %d)",
                self.uid,
                generation,
                self.generation,
            )
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="answer"))
        keep_consent_patiently(pc)
        self._awaiting_answer = False
        self._attempt_starts()
        self._remote_ufrag = _ice_ufrag(description.sdp)

    def _prepare_video_for(self, pc: RTCPeerConnection, offer: str) -> None:
        """Add our video transceiver for each new video line of an offer before applying it:
        aiortc picks the answer's codecs when the offer is applied, by the preferences of
        the transceiver it pairs with the line, and a transceiver it creates has none."""
        transceivers = pc.getTransceivers()
        known = {t.mid for t in transceivers if t.mid is not None}
        unpaired = sum(1 for t in transceivers if t.kind == "video" and t.mid is None)
        for media in SessionDescription.parse(offer).media:
            if media.kind != "video" or media.rtp.muxId in known:
                continue
            if unpaired:
                unpaired -= 1
            else:
                self._add_video(pc)

    async def _send_local_description(self, pc: RTCPeerConnection) -> None:
        local = pc.localDescription
        # A kit decodes any H.264 level: it declares at least the Pi camera's 4.0, so
        # another kit sends its camera's stream as it is.
        sdp = declare_level(local.sdp, KIT_LEVEL)
        await self._send(Description(type=local.type, sdp=sdp, generation=self.generation), None)


def attempt_timeout(unanswered: int) -> float:
    """Seconds a new connection has to carry media, after ``unanswered`` connections in a
    row that never did."""
    doubled = ATTEMPT_TIMEOUT * float(2 ** min(unanswered, ATTEMPT_DOUBLINGS))
    return doubled * random.uniform(1 - ATTEMPT_JITTER, 1 + ATTEMPT_JITTER)


def _ice_ufrag(sdp: str) -> str | None:
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.removeprefix("a=ice-ufrag:").strip()
    return None


async def _read_counters(pc: RTCPeerConnection) -> _Counters:
    """Packets that arrived on the connection's transport (RTP and RTCP alike) and RTP
    packets lost on the way, from aiortc's stats."""
    report = await pc.getStats()
    counters = _Counters()
    for stats in report.values():
        if stats.type == "transport":
            counters.received += stats.packetsReceived
            counters.bytes_received += stats.bytesReceived
            counters.bytes_sent += stats.bytesSent
        elif stats.type == "inbound-rtp":
            counters.lost += max(0, stats.packetsLost)
    return counters


async def _retire(pc: RTCPeerConnection) -> None:
    """Close a connection and end the local tracks it sent: a relay's subscriber left
    running would queue every frame forever."""
    tracks = [s.track for s in pc.getSenders() if s.track is not None]
    with contextlib.suppress(Exception):  # a half-built connection may fail to close
        await pc.close()
    for track in tracks:
        track.stop()


def _remote_sdp(pc: RTCPeerConnection) -> Callable[[], str | None]:
    def remote() -> str | None:
        description = pc.remoteDescription
        return description.sdp if description is not None else None

    return remote
