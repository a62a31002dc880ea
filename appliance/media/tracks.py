"""A MediaStreamTrack that is fed from outside (by a device pump) instead of pulling."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError


class PushTrack(MediaStreamTrack):
    """Frames pushed in by a pump come out of ``recv()``. A full queue drops its oldest
    frame: live media is better late-dropped than delayed."""

    def __init__(self, kind: str, queue_size: int) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)

    def push(self, frame: Any) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            # Wake a waiting recv() so MediaRelay's reader ends with the track.
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self._queue.get_nowait()
            self._queue.put_nowait(None)
