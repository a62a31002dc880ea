"""The call's recording: at most one at a time, started and stopped on request, and stopped
when writing it fails. Each start and stop is announced (to the server, the delegate and
the screen) by the session's ``announce``."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.calls.errors import CallsError
from appliance.tasks import TaskSet

# The recorder needs the media stack, which loads with a kit's first call.
if TYPE_CHECKING:
    from appliance.media.local import LocalMedia
    from appliance.media.recorder import FrameSource, Recorder
    from appliance.media.remote import AudioMixer, RemoteVideo

# Whether the call is now being recorded, and the file.
Announce = Callable[[bool, Path], Awaitable[None]]


class CallRecording:
    def __init__(
        self,
        directory: Path,
        session_id: str,
        sources: tuple[LocalMedia, AudioMixer, RemoteVideo],
        *,
        frame_source: FrameSource | None,
        announce: Announce,
        warn: Callable[[str, str, str], None],
        tasks: TaskSet,
    ) -> None:
        self._directory = directory
        self._session_id = session_id
        self._sources = sources
        self._frame_source = frame_source
        self._announce = announce
        self._warn = warn
        self._tasks = tasks
        self.recorder: Recorder | None = None

    async def start(self) -> Path:
        if self.recorder is not None:
            raise CallsError("already-recording", "the call is already being recorded")
        from appliance.media.recorder import Recorder

        local, mixer, remote_video = self._sources
        recorder = Recorder(
            self._directory,
            self._session_id,
            local,
            mixer,
            remote_video,
            on_failure=self._failed,
            frame_source=self._frame_source,
        )
        try:
            await recorder.start()
        except OSError as err:
            raise CallsError("recording-failed", f"cannot record: {err}", status=507) from None
        self.recorder = recorder
        await self._announce(True, recorder.path)
        return recorder.path

    async def stop(self) -> Path:
        recorder = self.take()
        if recorder is None:
            raise CallsError("not-recording", "the call is not being recorded")
        await recorder.stop()
        await self._announce(False, recorder.path)
        return recorder.path

    def take(self) -> Recorder | None:
        """The running recorder, no longer this call's to stop: the teardown stops it."""
        recorder, self.recorder = self.recorder, None
        return recorder

    def _failed(self, recorder: Recorder, err: Exception) -> None:
        if self.recorder is not recorder:
            return
        self._warn("recording-failed", "storage", str(err))

        async def stop() -> None:
            with contextlib.suppress(CallsError):
                await self.stop()

        self._tasks.spawn(stop(), "stop failed recording")
