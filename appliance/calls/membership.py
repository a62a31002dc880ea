"""Who is in the call: us and the others as the session server lists them, the most there
were at once, whose media stopped, and who has not come back after a reconnect.

Plain state and the events its changes make. The media of a participant who comes or goes
is the caller's, through two hooks, so this is testable without aiortc."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from appliance.events import (
    Event,
    RecordingToggled,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
    UserJoined,
    UserLeft,
    UserMuted,
    UserVideoPaused,
)
from appliance.signaling.messages import Participant

log = logging.getLogger(__name__)

# After we rejoin, how long a participant the server does not list yet (it restarted, and
# they have not reconnected) may take to come back, when their media cannot tell us.
REJOIN_WAIT = 20.0

# What a participant's state message may change, and what we compare after a reconnect.
PATCHED_FIELDS = ("muted", "video_paused", "recording")

Emit = Callable[[Event], object]
# Media for a participant who came (``offerer``: whether we make the first offer)...
Connect = Callable[[Participant, bool], None]
# ...and its release when they left.
Release = Callable[[str], Awaitable[None]]


def rtc_user(p: Participant) -> RTCUser:
    return RTCUser(
        uid=p.uid,
        name=p.name,
        avatar=p.avatar,
        audio_muted=p.muted,
        video_paused=p.video_paused,
        audio_only=p.audio_only,
    )


class Membership:
    def __init__(
        self,
        emit: Emit,
        *,
        connect: Connect,
        release: Release,
        active: Callable[[], bool],
        left_unseen: Callable[[], Awaitable[None]],
        log_prefix: str = "",
    ) -> None:
        """``active``: whether the call still is; ``left_unseen``: called after dropping
        those who left while the server could not tell us."""
        self._emit = emit
        self._connect = connect
        self._release = release
        self._active = active
        self._left_unseen = left_unseen
        self._log_prefix = log_prefix
        self._rejoin_timer: asyncio.Task[None] | None = None
        self.me: Participant | None = None
        self.others: dict[str, Participant] = {}  # in join order
        self.peak = 1  # most people in the call at once, us included: 2 means 1:1
        self.interrupted: set[str] = set()  # participants whose media stopped
        self.awaiting_rejoin: set[str] = set()  # known, but not (yet) back on the server

    @property
    def one_to_one_over(self) -> bool:
        """A 1:1 call is over when the other side goes, as the server would have said."""
        return not self.others and self.peak == 2

    def add(self, participant: Participant, *, offerer: bool) -> None:
        self.others[participant.uid] = participant
        self.peak = max(self.peak, 1 + len(self.others))
        self._emit(UserJoined(rtc_user(participant)))
        if participant.recording:  # the call was being recorded before we heard of them
            self._emit(RecordingToggled(RTCRecordingInfo(True, rtc_user(participant))))
        self._connect(participant, offerer)

    async def remove(self, uid: str) -> None:
        participant = self.others.pop(uid)
        self.interrupted.discard(uid)
        self.awaiting_rejoin.discard(uid)
        await self._release(uid)
        self._emit(UserLeft(rtc_user(participant)))

    async def remove_all(self) -> None:
        for uid in list(self.others):
            await self.remove(uid)

    def joined(self, participant: Participant) -> bool:
        """The server says they joined: whether they are new (not back after a reconnect,
        whose changes meanwhile are all that is news)."""
        self.awaiting_rejoin.discard(participant.uid)
        if participant.uid in self.others:
            self.resync(participant)
            return False
        self.add(participant, offerer=False)
        return True

    def update(self, participant: Participant, changed: Sequence[str]) -> None:
        if participant.uid not in self.others:
            return
        self.others[participant.uid] = participant
        self._emit_changes(participant, changed)

    def resync(self, participant: Participant) -> None:
        """A participant as the server lists it after a reconnect: events for what changed
        while we could not hear about it."""
        before = self.others[participant.uid]
        self.others[participant.uid] = participant
        changed = [f for f in PATCHED_FIELDS if getattr(before, f) != getattr(participant, f)]
        self._emit_changes(participant, changed)

    async def rebuild(
        self,
        me: Participant,
        present: Sequence[Participant],
        *,
        media_flowing: Callable[[str], bool],
    ) -> bool:
        """After we rejoined: reconcile who we knew with who the server lists. Someone
        missing whose media still flows is coming back too (the server restarted and forgot
        everyone); they stay, awaited. Returns whether anyone came or went."""
        self.me = me
        listed = {p.uid: p for p in present}
        changed = False
        for uid in [u for u in self.others if u not in listed]:
            if media_flowing(uid):
                log.info("%s%s not back on the server yet", self._log_prefix, uid)
                self.awaiting_rejoin.add(uid)
            else:
                await self.remove(uid)
                changed = True
        for uid, participant in listed.items():
            self.awaiting_rejoin.discard(uid)
            if uid in self.others:
                self.resync(participant)
            else:
                self.add(participant, offerer=True)
                changed = True
        return changed

    def wait_for_rejoiners(self) -> None:
        """Those awaited are dropped unless back within REJOIN_WAIT."""
        if self._rejoin_timer is None or self._rejoin_timer.done():
            self._rejoin_timer = asyncio.create_task(self._drop_absent(), name="rejoin wait")

    def stop_waiting(self) -> None:
        # Not when the call ends from the timer's own drop: that task is running the end.
        if self._rejoin_timer is not None and self._rejoin_timer is not asyncio.current_task():
            self._rejoin_timer.cancel()

    async def _drop_absent(self) -> None:
        await asyncio.sleep(REJOIN_WAIT)
        await self.drop(list(self.awaiting_rejoin))

    async def drop(self, uids: Sequence[str]) -> None:
        """Participants that left while we could not hear it from the server."""
        dropped = [uid for uid in uids if uid in self.others]
        self.awaiting_rejoin.difference_update(uids)
        if not dropped or not self._active():
            return
        for uid in dropped:
            log.info("%s%s left while the server was away", self._log_prefix, uid)
            await self.remove(uid)
        await self._left_unseen()

    def media_interrupted(self, uid: str) -> bool:
        """Their media stopped: whether they are gone (not back on the server either)."""
        self.interrupted.add(uid)
        return uid in self.awaiting_rejoin

    def media_restored(self, uid: str) -> bool:
        """Their media came back: whether it had been interrupted."""
        if uid not in self.interrupted:
            return False
        self.interrupted.discard(uid)
        return True

    def update_me(self, changes: dict[str, object]) -> None:
        if self.me is not None:
            self.me = self.me.model_copy(update=changes)

    def clear_audio_only(self) -> None:
        """The call became a video call, for everyone in it."""
        self.others = {
            uid: p.model_copy(update={"audio_only": False}) for uid, p in self.others.items()
        }
        if self.me is not None:
            self.me = self.me.model_copy(update={"audio_only": False})

    def _emit_changes(self, participant: Participant, changed: Sequence[str]) -> None:
        user = rtc_user(participant)
        if "muted" in changed:
            self._emit(UserMuted(RTCMutedUser(user, user, participant.muted)))
        if "video_paused" in changed:
            self._emit(UserVideoPaused(RTCVideoPausedUser(user, participant.video_paused)))
        if "recording" in changed:
            self._emit(RecordingToggled(RTCRecordingInfo(participant.recording, user)))
