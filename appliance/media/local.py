"""The kit's own camera and microphone during a session.

One pump task per device reads it (a device is read once, whoever consumes it) and feeds:
the self view, taps (recorder, level meter), and the peers: audio through one bounded
PushTrack per peer, video through one OutgoingVideo per peer, which picks the camera's own
H.264 packets or frames for that peer's codec. A camera with a hardware encoder also streams
small frames (``read_preview``) for the self view and for peers that cannot take H.264.
A paused camera is closed, not just hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np

from appliance.audio.engines import Processed
from appliance.media.counters import MediaCounters
from appliance.media.h264_levels import level_needed
from appliance.media.levels import LevelMeter
from appliance.media.outgoing import OutgoingVideo
from appliance.media.outgoing_audio import OpusEncoder, OutgoingAudio
from appliance.media.view import View
from hal.audio.base import SAMPLE_RATE, AudioError, Microphone, Pcm
from hal.camera.base import Camera, CameraError, CameraInfo, EncodingCamera, VideoFormat
from hal.errors import HardwareError

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
RETRY_SECONDS = 1.0
# At most 200 ms of our audio waits for a peer's sender (the bound the one queue in front
# of aiortc's relay had; the relay behind it had none).
SEND_QUEUE_FRAMES = 10
# Captured blocks go through the room audio at most this many (200 ms) in one trip; at most
# MAX_QUEUED_BLOCKS (400 ms) wait for it, the oldest dropped beyond: a CPU that cannot keep
# up loses audio, never adds delay.
MAX_BATCH_BLOCKS = 10
MAX_QUEUED_BLOCKS = 20
LOCAL = "local"  # the uid under which the self view is shown

AudioTap = Callable[[Pcm, bool], None]  # (pcm, muted)
Warn = Callable[[str, str, str], None]  # (code, device, message)


class CaptureProcessing(Protocol):
    """The room audio processing between the microphone and the outgoing track."""

    async def process_blocks(self, blocks: Sequence[tuple[Pcm, float]]) -> list[Processed]:
        """Captured blocks in order, each with the loop time it was complete at."""


class LocalMedia:
    def __init__(
        self,
        cameras: list[Camera],
        microphone: Microphone | None,
        fmt: VideoFormat,
        view: View | None,
        warn: Warn,
        on_camera_change: Callable[[bool], None] = lambda ok: None,
        processing: CaptureProcessing | None = None,
        counters: MediaCounters | None = None,
    ) -> None:
        self._counters = counters if counters is not None else MediaCounters()
        self._cameras = cameras
        self._microphone = microphone
        self._processing = processing
        self._fmt = fmt
        self._view = view
        self._warn = warn
        self._on_camera_change = on_camera_change
        self._audio_tracks: list[OutgoingAudio] = []
        self._encoding: ThreadPoolExecutor | None = None  # Opus, once a peer takes packets
        self._opus: OpusEncoder | None = None
        self._video_tracks: list[OutgoingVideo] = []
        self._camera_packets = False  # the open camera gives H.264 packets
        self._audio_taps: list[AudioTap] = []
        self._audio_task: asyncio.Task[None] | None = None
        self._video_task: asyncio.Task[None] | None = None
        self._camera_index = 0
        self._clock_origin = 0.0
        self._samples_sent = 0  # our audio's sample clock (RTP timestamps follow it)
        self.audio_muted = False
        self.video_paused = False
        self.video_enabled = False  # False in an audio-only call
        self.camera_ok = True
        self.level = LevelMeter()
        self.video_frames_sent = 0
        self.blocks_dropped = 0  # captured audio the sender could not keep up with
        self.latest_frames: dict[str, av.VideoFrame] = {}  # the self view, for the recorder

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, *, audio_muted: bool, video_enabled: bool, video_paused: bool) -> None:
        self._clock_origin = asyncio.get_running_loop().time()
        self.audio_muted = audio_muted
        self.video_enabled = video_enabled
        self.video_paused = video_paused
        if self._microphone is not None:
            self._audio_task = asyncio.create_task(self._audio_pump(), name="mic pump")
        await self._update_video()

    async def stop(self) -> None:
        """Release the camera and microphone and end every track."""
        for task in (self._audio_task, self._video_task):
            if task is not None:
                task.cancel()
        for task in (self._audio_task, self._video_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._audio_task = self._video_task = None
        for audio in self._audio_tracks:
            audio.stop()
        self._audio_tracks.clear()
        encoding, self._encoding, self._opus = self._encoding, None, None
        if encoding is not None:
            encoding.shutdown(wait=False)
        for track in self._video_tracks:
            track.stop()
        self._video_tracks.clear()
        if self._view is not None:
            self._view.forget(LOCAL)

    # --- tracks for peers ----------------------------------------------------------------

    def audio_track(self) -> OutgoingAudio:
        """A new peer's audio, with a queue of its own that drops its oldest frame when
        full: a sender that falls behind (a busy CPU) loses a frame, never adds delay to
        every later one (aiortc's MediaRelay queues without a bound: a sender that fell
        behind once stayed that far behind for the rest of the connection)."""
        self._audio_tracks = [t for t in self._audio_tracks if t.readyState == "live"]
        track = OutgoingAudio(queue_size=SEND_QUEUE_FRAMES)
        self._audio_tracks.append(track)
        return track

    def video_track(self) -> OutgoingVideo:
        """A new peer's video: the peer tells it the negotiated codec (``use_codec``) and
        passes on key frame requests (``keyframe_requested``)."""
        self._video_tracks = [t for t in self._video_tracks if t.readyState == "live"]
        track = OutgoingVideo(self.request_keyframe, self._counters)
        track.set_camera_packets(self._camera_packets)
        track.set_stream_level(self._stream_level())
        self._video_tracks.append(track)
        return track

    @property
    def prefers_h264(self) -> bool:
        """A camera here encodes H.264 itself: peers should negotiate H.264 to get it as is."""
        return any(camera.info.output == "h264" for camera in self._cameras)

    def request_keyframe(self) -> None:
        """Ask the camera in use for a key frame (a peer lost the picture, or a peer starts
        taking its packets)."""
        if self._cameras and self._video_task is not None:
            camera = self._cameras[self._camera_index]
            if camera.is_open:
                camera.request_keyframe()

    def add_audio_tap(self, tap: AudioTap) -> Callable[[], None]:
        self._audio_taps.append(tap)
        return lambda: self._audio_taps.remove(tap) if tap in self._audio_taps else None

    # --- controls ------------------------------------------------------------------------

    def set_audio_muted(self, muted: bool) -> None:
        self.audio_muted = muted

    async def set_video_paused(self, paused: bool) -> None:
        """Returns once the camera is released (paused) or delivering again (resumed)."""
        self.video_paused = paused
        await self._update_video()

    async def enable_video(self) -> None:
        self.video_enabled = True
        await self._update_video()

    async def disable_video(self) -> None:
        """The call is audio-only after all: a camera opened ahead of the answer closes."""
        self.video_enabled = False
        await self._update_video()

    @property
    def camera(self) -> CameraInfo | None:
        return self._cameras[self._camera_index].info if self._cameras else None

    async def switch_camera(self) -> CameraInfo:
        if len(self._cameras) < 2:
            raise HardwareError("camera", "there is no other camera to switch to")
        running = self._video_task is not None
        await self._stop_video()  # release this camera before taking the other
        self._camera_index = (self._camera_index + 1) % len(self._cameras)
        if running:
            await self._update_video()
        return self._cameras[self._camera_index].info

    @property
    def sending_video(self) -> bool:
        return self.video_enabled and not self.video_paused and self.camera_ok

    async def _update_video(self) -> None:
        wanted = self.video_enabled and not self.video_paused and bool(self._cameras)
        if wanted and self._video_task is None:
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._video_task = asyncio.create_task(self._video_pump(started), name="camera")
            await asyncio.wait([started, self._video_task], return_when=asyncio.FIRST_COMPLETED)
        elif not wanted:
            await self._stop_video()

    async def _stop_video(self) -> None:
        task, self._video_task = self._video_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.latest_frames.pop(LOCAL, None)
        if self._view is not None:
            self._view.forget(LOCAL)

    # --- pumps ---------------------------------------------------------------------------

    def _now(self, rate: int) -> int:
        return int((asyncio.get_running_loop().time() - self._clock_origin) * rate)

    async def _video_pump(self, started: asyncio.Future[None]) -> None:
        """Reads the camera until cancelled; ``started`` resolves once it is open or has
        failed (the pump then keeps retrying in the background)."""
        camera = self._cameras[self._camera_index]
        preview: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    await camera.open(self._fmt)
                    self._set_camera_packets(camera.info.output == "h264")
                    self._set_stream_level()
                    if self._camera_packets:
                        if not isinstance(camera, EncodingCamera):
                            raise CameraError("camera", f"{camera.info.id} has no preview frames")
                        preview = asyncio.create_task(self._preview_pump(camera), name="preview")
                    if not started.done():
                        started.set_result(None)
                    self._camera_state(True)
                    while True:
                        item = await camera.read()
                        item.pts = self._now(90_000)
                        item.time_base = VIDEO_TIME_BASE
                        if isinstance(item, av.VideoFrame):
                            self._frame_out(item)
                        else:
                            for track in self._video_tracks:
                                track.push_packet(item)
                        self.video_frames_sent += 1
                except CameraError as err:
                    await _cancelled(preview)
                    preview = None
                    if self.camera_ok:
                        self._warn("camera-failed", "camera", err.message)
                    self._camera_state(False)
                    if self._view is not None:
                        self._view.forget(LOCAL)
                    with contextlib.suppress(HardwareError):
                        await camera.close()
                    if not started.done():
                        started.set_result(None)
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            await _cancelled(preview)
            with contextlib.suppress(HardwareError):
                await camera.close()

    async def _preview_pump(self, camera: EncodingCamera) -> None:
        """The small frames an encoding camera streams beside its packets."""
        with contextlib.suppress(CameraError):  # the packet pump sees the failure too
            while True:
                frame = await camera.read_preview()
                frame.pts = self._now(90_000)
                frame.time_base = VIDEO_TIME_BASE
                self._frame_out(frame)

    def _frame_out(self, frame: av.VideoFrame) -> None:
        self.latest_frames[LOCAL] = frame
        if self._view is not None:
            self._view.show_video(LOCAL, frame)
        for track in self._video_tracks:
            track.push_frame(frame)

    def _stream_level(self) -> int | None:
        fmt = self._fmt
        if not self._camera_packets:
            return None
        return level_needed(fmt.width, fmt.height, fmt.fps)

    def _set_stream_level(self) -> None:
        level = self._stream_level()
        for track in self._video_tracks:
            track.set_stream_level(level)

    def _set_camera_packets(self, packets: bool) -> None:
        self._camera_packets = packets
        for track in self._video_tracks:
            track.set_camera_packets(packets)

    def _camera_state(self, ok: bool) -> None:
        if ok != self.camera_ok:
            self.camera_ok = ok
            if ok:
                self._warn("camera-restored", "camera", "the camera works again")
            self._on_camera_change(ok)

    async def _audio_pump(self) -> None:
        microphone = self._microphone
        assert microphone is not None
        healthy = True
        try:
            while True:
                try:
                    await microphone.open()
                    if not healthy:
                        self._warn("microphone-restored", "microphone", "the microphone works")
                    healthy = True
                    await self._send_microphone(microphone)
                except AudioError as err:
                    if healthy:
                        self._warn("microphone-failed", "microphone", err.message)
                    healthy = False
                    with contextlib.suppress(HardwareError):
                        await microphone.close()
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            with contextlib.suppress(HardwareError):
                await microphone.close()

    async def _send_microphone(self, microphone: Microphone) -> None:
        """Reads the open microphone and sends what it hears until it fails (AudioError).

        A reader task queues each block as it comes; the sender takes every block queued
        at once, so a loop held up for a while (a busy CPU) catches up on its next turn
        instead of staying a block per turn behind the microphone for good."""
        loop = asyncio.get_running_loop()
        captured: asyncio.Queue[tuple[Pcm, float] | AudioError] = asyncio.Queue()

        async def read() -> None:
            try:
                while True:
                    pcm = await microphone.read()
                    if captured.qsize() >= MAX_QUEUED_BLOCKS:
                        captured.get_nowait()
                        self.blocks_dropped += 1
                    captured.put_nowait((pcm, loop.time()))
            except AudioError as err:
                captured.put_nowait(err)

        reader = asyncio.create_task(read(), name="microphone reader")
        try:
            while True:
                batch = [await captured.get()]
                while not captured.empty() and len(batch) < MAX_BATCH_BLOCKS:
                    batch.append(captured.get_nowait())
                blocks = [item for item in batch if not isinstance(item, AudioError)]
                await self._send_blocks(blocks)
                for item in batch:
                    if isinstance(item, AudioError):
                        raise item
        finally:
            await _cancelled(reader)

    async def _send_blocks(self, blocks: list[tuple[Pcm, float]]) -> None:
        if not blocks:
            return
        if self._processing is not None:
            # Processed even while muted: the echo canceller keeps up.
            processed = await self._processing.process_blocks(blocks)
            out = [(p.pcm, p.voice) for p in processed]
        else:
            out = [(pcm, None) for pcm, _ in blocks]
        frames: list[av.AudioFrame] = []
        for pcm, voice in out:
            muted = self.audio_muted
            self.level.add(pcm if not muted else None, voice)
            for tap in list(self._audio_taps):
                tap(pcm, muted)
            if not muted:
                frames.append(_audio_frame(pcm, self._samples_sent))
            self._samples_sent += len(pcm)
        if frames:
            await self._send_frames(frames)

    async def _send_frames(self, frames: list[av.AudioFrame]) -> None:
        """To each peer: Opus packets, encoded here once for them all in one trip to the
        encoding thread, or the frames for a peer on another codec."""
        tracks = [t for t in self._audio_tracks if t.readyState == "live"]
        for track in tracks:
            if not track.takes_packets:
                for frame in frames:
                    track.push(frame)
        opus_tracks = [t for t in tracks if t.takes_packets]
        if not opus_tracks:
            return
        if self._encoding is None:
            self._encoding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opus")
            self._opus = OpusEncoder()
        assert self._opus is not None
        loop = asyncio.get_running_loop()
        packets = await loop.run_in_executor(self._encoding, self._opus.encode, frames)
        for track in opus_tracks:
            for packet in packets:
                track.push(packet)


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _audio_frame(pcm: Pcm, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = AUDIO_TIME_BASE
    return frame


def pcm_of(frame: Any) -> Pcm:
    """Mono int16 48 kHz samples of a decoded audio frame (aiortc decodes Opus to s16
    stereo 48 kHz; G.711 arrives as 8 kHz mono and is resampled by the caller)."""
    data = frame.to_ndarray()
    if frame.format.is_packed and len(frame.layout.channels) == 2:
        stereo = data.reshape(-1, 2).astype(np.int32)
        mono: Pcm = ((stereo[:, 0] + stereo[:, 1]) // 2).astype(np.int16)
        return mono
    first: Pcm = np.asarray(data[0], dtype=np.int16)
    return first
