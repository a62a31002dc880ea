"""Call recording: the remote mix plus the local microphone, and the main video (or the
call composed by the screen's compositor in the default layout, without the on-screen
buttons), written to a Matroska file by a writer thread.

Matroska is written cluster by cluster, so a file cut short by a crash, a power cut or a
full disk still plays up to its last cluster. Clusters are kept short (``CLUSTER_MS``, each
starting near a key frame), every packet goes to the kernel as it is muxed, and the file is
fsynced every ``SYNC_SECONDS``: a process killed mid-write loses about a second, a power cut
a few.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from appliance.media.local import LOCAL, LocalMedia
from appliance.media.remote import AudioMixer, JitterBuffer, RemoteVideo
from hal.audio.base import FRAME_SAMPLES, SAMPLE_RATE, Pcm

log = logging.getLogger(__name__)

RECORD_SIZE = (640, 360)
RECORD_FPS = 15
CLUSTER_MS = 1000  # the most a crash can cut from the end, besides the encoder's delay
KEYFRAME_FRAMES = 2 * RECORD_FPS  # so every other cluster decodes on its own
SYNC_SECONDS = 2.0
MUXER_OPTIONS = {
    "cluster_time_limit": str(CLUSTER_MS),
    "cluster_size_limit": str(1 << 20),
    "flush_packets": "1",  # hand each packet to the kernel: a killed process loses nothing
}
FrameSource = Callable[[], "av.VideoFrame | None"]


class Recorder:
    def __init__(
        self,
        directory: Path,
        session_id: str,
        local: LocalMedia,
        mixer: AudioMixer,
        remote_video: RemoteVideo,
        on_failure: Callable[[Recorder, Exception], None],
        frame_source: FrameSource | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sync: Callable[[int], None] = os.fsync,
    ) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = directory / f"{stamp}-{_safe(session_id)}.mkv"
        self._local = local
        self._mixer = mixer
        self._remote_video = remote_video
        self._on_failure = on_failure
        self._frame_source = frame_source or self._main_video
        self._mic = JitterBuffer()
        self._queue: queue.Queue[tuple[str, Any, int] | None] = queue.Queue(maxsize=200)
        self._thread: threading.Thread | None = None
        self._video_task: asyncio.Task[None] | None = None
        self._untap: Callable[[], None] | None = None
        self._audio_pts = 0
        self._failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._file: Any = None  # the raw file under the container, for fsync
        # The periodic sync's clock and the sync itself (tests pass ones that record).
        self._monotonic = monotonic
        self._sync = sync

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        container = await asyncio.to_thread(self._open)
        self._thread = threading.Thread(
            target=self._write, args=(container,), name=f"recorder {self.path.name}", daemon=True
        )
        self._thread.start()
        self._untap = self._local.add_audio_tap(self._on_mic)
        self._mixer.taps.append(self._on_mix)
        self._video_task = asyncio.create_task(self._video_ticks(), name="recorder video")

    async def stop(self) -> None:
        if self._untap is not None:
            self._untap()
            self._untap = None
        with contextlib.suppress(ValueError):
            self._mixer.taps.remove(self._on_mix)
        if self._video_task is not None:
            self._video_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._video_task
            self._video_task = None
        if self._thread is not None:
            await asyncio.to_thread(self._queue.put, None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # --- feeding (event loop) ------------------------------------------------------------

    def _on_mic(self, pcm: Pcm, muted: bool) -> None:
        self._mic.put(np.zeros_like(pcm) if muted else pcm)

    def _on_mix(self, remote: Pcm) -> None:
        mic = self._mic.take(FRAME_SAMPLES)
        mixed = remote.astype(np.int32)
        if mic is not None:
            mixed += mic
        self._enqueue("audio", np.clip(mixed, -32768, 32767).astype(np.int16), self._audio_pts)
        self._audio_pts += FRAME_SAMPLES

    async def _video_ticks(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / RECORD_FPS - loop.time()))
            frame = self._frame_source()
            if frame is not None:
                self._enqueue("video", frame, int((loop.time() - start) * 1000))

    def _main_video(self) -> av.VideoFrame | None:
        """The first remote participant with video, else the self view."""
        for frame in self._remote_video.latest.values():
            return frame
        return self._local.latest_frames.get(LOCAL)

    def _enqueue(self, kind: str, payload: Any, pts: int) -> None:
        if self._failed:
            return
        try:
            self._queue.put_nowait((kind, payload, pts))
        except queue.Full:
            log.warning("recorder %s falls behind; dropping %s", self.path.name, kind)

    # --- writing (writer thread) ---------------------------------------------------------

    def _open(self) -> av.container.OutputContainer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _create(self.path)
        self.path = Path(self._file.name)
        try:
            container = av.open(self._file, mode="w", format="matroska", options=MUXER_OPTIONS)
        except BaseException:
            self._file.close()
            with contextlib.suppress(OSError):
                self.path.unlink()  # nothing was written: no empty recording left behind
            raise
        video = container.add_stream("libx264", rate=RECORD_FPS)
        video.width, video.height = RECORD_SIZE
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, 1000)
        video.codec_context.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "g": str(KEYFRAME_FRAMES),
        }
        audio = container.add_stream("libopus", rate=SAMPLE_RATE)
        audio.layout = "mono"
        audio.time_base = Fraction(1, SAMPLE_RATE)
        return container

    def _write(self, container: av.container.OutputContainer) -> None:
        video, audio = container.streams.video[0], container.streams.audio[0]
        last_video_pts = -1
        synced_at = self._monotonic()
        try:
            while (item := self._queue.get()) is not None:
                if (now := self._monotonic()) - synced_at >= SYNC_SECONDS:
                    self._sync(self._file.fileno())
                    synced_at = now
                kind, payload, pts = item
                if kind == "audio":
                    frame = av.AudioFrame.from_ndarray(
                        payload.reshape(1, -1), format="s16", layout="mono"
                    )
                    frame.sample_rate = SAMPLE_RATE
                    frame.pts, frame.time_base = pts, Fraction(1, SAMPLE_RATE)
                    container.mux(audio.encode(frame))
                elif pts > last_video_pts:
                    frame = payload.reformat(*RECORD_SIZE, format="yuv420p")
                    frame.pts, frame.time_base = pts, Fraction(1, 1000)
                    last_video_pts = pts
                    container.mux(video.encode(frame))
            container.mux(video.encode(None))
            container.mux(audio.encode(None))
        except Exception as err:  # a full disk, a bad frame: stop, keep what was written
            self._failed = True
            log.error("recording %s failed: %s", self.path.name, err)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_failure, self, err)
            while self._queue.get() is not None:  # drain so stop() never blocks
                pass
        finally:
            with contextlib.suppress(Exception):
                container.close()
            with contextlib.suppress(OSError):
                self._sync(self._file.fileno())
            self._file.close()


def _create(path: Path) -> Any:
    """A new file at ``path`` (``-2``, ``-3``... when a recording of the same second and
    session exists): unbuffered, so what the muxer flushes reaches the kernel at once."""
    for attempt in range(1, 100):
        candidate = path if attempt == 1 else path.with_stem(f"{path.stem}-{attempt}")
        try:
            return open(candidate, "xb", buffering=0)  # the writer thread closes it
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: too many recordings with this name")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
