"""The kit's own side of a call, as its buttons, screen and API change it: the microphone,
the video, the camera and the audio route. A change is published to the server and told to
the delegate once; asking for what already is tells no one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from appliance.calls.errors import CallsError
from appliance.events import (
    Event,
    RTCMutedUser,
    RTCUser,
    RTCVideoPausedUser,
    UserMuted,
    UserVideoPaused,
)
from appliance.media.routes import AudioRouter
from appliance.signaling.messages import StatePatch
from appliance.tasks import TaskSet
from hal.audio.base import Route as AudioMode
from hal.errors import HardwareError

# LocalMedia needs the media stack, which loads with a kit's first call.
if TYPE_CHECKING:
    from appliance.media.local import LocalMedia

log = logging.getLogger(__name__)


class LocalControls:
    def __init__(
        self,
        local: LocalMedia,
        router: AudioRouter,
        *,
        publish: Callable[[StatePatch], Coroutine[Any, Any, None]],
        emit: Callable[[Event], object],
        me: Callable[[], RTCUser],
        changed: Callable[[], None],
        tasks: TaskSet,
        log_prefix: str = "",
    ) -> None:
        """``me``: us as the others see us; ``changed``: tells the screen and the API our
        local state changed."""
        self._local = local
        self._router = router
        self._publish = publish
        self._emit = emit
        self._me = me
        self._changed = changed
        self._tasks = tasks
        self._log_prefix = log_prefix

    @property
    def video_paused_for_others(self) -> bool:
        """Paused by hand, or no camera to send from."""
        return self._local.video_paused or not self._local.camera_ok

    async def mute_audio(self, muted: bool) -> None:
        if muted == self._local.audio_muted:
            return  # no change: no one is told
        self._local.set_audio_muted(muted)
        await self._publish(StatePatch(muted=muted))
        me = self._me()
        self._emit(UserMuted(RTCMutedUser(me, me, muted)))
        self._changed()

    async def pause_video(self, paused: bool) -> None:
        if paused == self._local.video_paused:
            return
        await self._local.set_video_paused(paused)
        await self._publish(StatePatch(video_paused=self.video_paused_for_others))
        self._emit(UserVideoPaused(RTCVideoPausedUser(self._me(), paused)))
        self._changed()

    def camera_changed(self, ok: bool) -> None:
        """The camera failed or came back: the others see our video paused or not."""
        self._tasks.spawn(
            self._publish(StatePatch(video_paused=self.video_paused_for_others)), "camera state"
        )
        self._changed()

    async def switch_camera(self) -> None:
        try:
            camera = await self._local.switch_camera()
        except HardwareError as err:
            raise CallsError("no-other-camera", err.message) from None
        log.info("%sswitched to camera %s", self._log_prefix, camera.id)
        self._changed()

    async def set_audio_mode(self, mode: AudioMode) -> None:
        before = self._router.current
        await self._router.select(mode)  # chosen by hand even if current: it stays on it
        if self._router.current != before:
            self._changed()
