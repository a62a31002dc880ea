"""Storage under faults: config writes killed at random points, a disk that fills up
during a recording, and a recording process killed mid-write."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from appliance import storage
from appliance.config import OVERRIDES_FILE, merge, read_toml, validate
from appliance.daemon import Daemon
from appliance.media import recorder as recorder_module
from hal.audio.pcm import dominant_frequency
from hal.camera.pattern import colour_distance, dominant_colour, kit_colour, read_pattern
from tests.daemons import kit_config
from tests.kits import KitFactory
from tests.reliability import recorder_process
from tests.reliability.config_writer import generation

REPO = Path(__file__).resolve().parents[2]
KILLS = 150


# --- config writes killed at random points ----------------------------------------------


def test_config_writes_killed_at_random_points_leave_the_old_or_the_new(tmp_path: Path) -> None:
    """A writer process (save_overrides in a loop) is SIGKILLed ``KILLS`` times, each time
    at a random moment: before, during or after its temp file, fsync, rename and directory
    fsync. Every time, overrides.toml is exactly the last generation it finished or the one
    it was writing, and it loads as a valid config."""
    rng = random.Random(20240601)
    zygote = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.config_writer", str(tmp_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    outcomes: dict[str, int] = {"old": 0, "new": 0}
    last_done = -1
    waited_for = 0  # writes the test saw finish before it chose its moment to kill
    try:
        for _ in range(KILLS):
            zygote.stdin.write(f"{last_done + 1}\n")
            zygote.stdin.flush()
            kind, pid = zygote.stdout.readline().split()
            assert kind == "pid"
            # Let it finish 0-2 writes, then kill it a random moment later: the kills land
            # all over a write however fast the machine is today.
            for _ in range(rng.randint(0, 2)):
                done, n = zygote.stdout.readline().split()
                assert done == "done"
                last_done = int(n)
                waited_for += 1
            time.sleep(rng.uniform(0, 0.012))
            os.kill(int(pid), signal.SIGKILL)
            while True:
                line = zygote.stdout.readline().split()
                if line[0] == "done":
                    last_done = int(line[1])
                elif line[0] == "ended":
                    assert os.WIFSIGNALED(int(line[2])), line
                    break
            data = read_toml(tmp_path / OVERRIDES_FILE)
            if last_done < 0 and not data:
                continue  # killed before its first rename: no file yet, as before
            if data == generation(last_done):
                outcomes["old"] += 1
            else:
                assert data == generation(last_done + 1), "torn or unknown content"
                outcomes["new"] += 1
                last_done += 1  # it was renamed into place just before the kill
            validate(merge({}, data))
    finally:
        zygote.stdin.close()
        zygote.kill()
        zygote.wait()
    # The kills landed on both sides of the rename.
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes
    assert last_done + 1 >= waited_for  # no finished write was lost or counted twice

    # Writes cut short left temp files; the daemon's next start clears them, the config
    # stays (and so does a file of the operator's that only looks like one).
    leftovers = [p for p in tmp_path.iterdir() if p.name != OVERRIDES_FILE]
    assert leftovers
    assert all(p.name.startswith(".overrides.toml.") for p in leftovers)
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    asyncio.run(start_and_stop_a_daemon(tmp_path))
    assert not any(p.exists() for p in leftovers)
    assert keep.read_text() == "mine"
    assert read_toml(tmp_path / OVERRIDES_FILE) == generation(last_done)


async def start_and_stop_a_daemon(state: Path) -> None:
    config = kit_config(state.parent, "room-a", 400)
    config["paths"]["state"] = str(state)
    daemon = Daemon(validate(config))
    await daemon.start()
    await daemon.stop()


def test_a_write_is_synced_before_and_after_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes it power-cut safe, not only crash safe: the data reaches the disk before
    the rename, and the rename before the call returns."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append(("rename", f"{Path(src).name} -> {Path(dst).name}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "overrides.toml"
    storage.atomic_write_text(target, "x = 1\n")
    (kind1, synced), (kind2, renamed), (kind3, directory) = calls
    assert (kind1, kind2, kind3) == ("fsync", "rename", "fsync")
    temp = Path(synced).name
    assert temp.startswith(".overrides.toml.") and temp.endswith(".tmp")
    assert renamed == f"{temp} -> overrides.toml"
    assert directory == str(tmp_path)
    assert target.read_text() == "x = 1\n"


# --- a disk that fills up during a recording --------------------------------------------


class FullDisk:
    """The recorder's file on a disk with ``room`` bytes left (used where no small file
    system can be mounted): writes past it raise ENOSPC, as the kernel would."""

    def __init__(self, raw: Any, room: int) -> None:
        self._raw = raw
        self.room = room
        self.name = raw.name

    def write(self, data: bytes) -> int:
        position = self._raw.tell()
        end = position + len(data)
        if end > os.fstat(self._raw.fileno()).st_size and len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= max(0, end - os.fstat(self._raw.fileno()).st_size)
        written: int = self._raw.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@contextlib.contextmanager
def small_filesystem(where: Path, size: int) -> Iterator[str | None]:
    """A file system of ``size`` bytes mounted at ``where``: tmpfs, or else ext4 in a loop
    file (both need root); None when neither can be mounted."""
    where.mkdir(parents=True, exist_ok=True)
    attempts = [["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]]
    image = where.parent / f"{where.name}.img"
    for command in [*attempts, ["loop"]]:
        if os.geteuid() != 0:
            break
        if command == ["loop"]:
            with image.open("wb") as f:
                f.truncate(size)
            made = subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True)
            if made.returncode != 0:
                break
            command = ["mount", "-o", "loop", str(image), str(where)]
        if subprocess.run(command, capture_output=True).returncode == 0:
            try:
                yield command[2] if command[1] == "-t" else "ext4 on a loop device"
            finally:
                subprocess.run(["umount", "-l", str(where)], check=False)
            return
    yield None


def fill(directory: Path) -> Path:
    """Fills the file system under ``directory`` to the last byte."""
    filler = directory / "filler"
    stats = os.statvfs(directory)
    with filler.open("ab", buffering=0) as f, contextlib.suppress(OSError):
        f.write(b"\0" * stats.f_bavail * stats.f_frsize)
        while True:  # what the estimate missed (metadata, rounding), until ENOSPC
            f.write(b"\0" * 512)
    return filler


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def decoded(path: Path) -> tuple[list[av.VideoFrame], np.ndarray[Any, Any]]:
    """Every video frame and audio sample PyAV can decode from ``path``, tolerating a cut."""
    frames: list[av.VideoFrame] = []
    with av.open(str(path)) as container, contextlib.suppress(av.error.InvalidDataError):
        frames.extend(container.decode(video=0))
    chunks: list[np.ndarray[Any, Any]] = []
    with av.open(str(path)) as container, contextlib.suppress(av.error.InvalidDataError):
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return frames, audio


def tone_level(pcm: np.ndarray[Any, Any], hz: float, rate: int = 48_000) -> float:
    """The magnitude at ``hz`` relative to the spectrum's median (how clearly it is there)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / rate)
    near = spectrum[np.abs(bins - hz) < 10]
    return float(near.max() / (np.median(spectrum) + 1e-9))


async def test_a_full_disk_stops_the_recording_not_the_call(
    kits: KitFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recordings = tmp_path / "room-a" / "recordings"
    with small_filesystem(recordings, 8 << 20) as mounted:
        a = await kits("room-a")
        b = await kits("room-b")
        await a.join("full")
        await b.join("full")
        await a.wait_for_video_from("room-b")
        await a.wait_to_hear(b.tone_hz)

        disk: list[FullDisk] = []
        if mounted is None:  # no mount here: ENOSPC injected at the file layer instead
            create = recorder_module._create

            def on_a_full_disk(path: Path) -> Any:
                disk.append(FullDisk(create(path), room=1 << 40))
                return disk[-1]

            monkeypatch.setattr(recorder_module, "_create", on_a_full_disk)

        path = await a.calls.start_recording()
        assert path.parent == recordings
        mark_a, mark_b = len(a.events), len(b.events)
        async with asyncio.timeout(20):  # a few seconds of recording first
            while size_of(path) < 120_000:
                await asyncio.sleep(0.05)
        if mounted is None:
            disk[0].room = 0
        else:
            filler = fill(recordings)

        warning = await a.wait_for("onWarning", lambda d: d["code"] == "recording-failed")
        assert warning.data["device"] == "storage"
        assert "No space left" in warning.data["message"]
        stopped = await a.wait_for(
            "onRecordingToggled", lambda d: not d["is_recording_started"], after=mark_a
        )
        assert stopped.data["path"] == str(path)
        told = await b.wait_for(
            "onRecordingToggled", lambda d: not d["is_recording_started"], after=mark_b
        )
        assert told.data["user"]["uid"] == "room-a"
        assert a.calls.snapshot()["local"]["recording"] is False

        # The call goes on, both ways, after the failure.
        fail_mark = len(a.events)
        await a.wait_for_video_from("room-b")
        await b.wait_for_video_from("room-a")
        await a.wait_to_hear(b.tone_hz)
        await b.wait_to_hear(a.tone_hz)
        assert not a.named("onCallEnded") and not b.named("onCallEnded")
        assert a.calls.session is not None
        assert not [e for e in a.events[fail_mark:] if e.event == "onWarning"]

        # What was recorded plays: the far kit's camera and both kits' tones.
        frames, audio = decoded(path)
        assert len(frames) >= 15, len(frames)
        readable = [info for f in frames if (info := read_pattern(f)) is not None]
        assert len(readable) >= len(frames) // 2
        counters = [info.counter for info in readable]
        assert counters == sorted(counters)
        far = kit_colour("room-b")
        assert colour_distance(dominant_colour(frames[-1]), far) < 60
        assert len(audio) >= 48_000
        assert tone_level(audio, b.tone_hz) > 20
        assert tone_level(audio, a.tone_hz) > 20

        # Room again: recording works again.
        if mounted is None:
            disk.clear()
            monkeypatch.undo()
        else:
            filler.unlink()
        again = await a.calls.start_recording()
        await asyncio.sleep(1.5)
        await a.calls.stop_recording()
        assert len(decoded(again)[0]) >= 10
        await a.calls.end_session()


# --- a recording process killed mid-write -----------------------------------------------


async def test_a_recording_cut_by_a_kill_plays_up_to_the_last_second(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.recorder_process",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        path = Path((await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip())
        async with asyncio.timeout(60):  # a few seconds of recording
            while size_of(path) < 120_000:
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    frames, audio = decoded(path)
    assert len(frames) >= 2 * recorder_module.RECORD_FPS, len(frames)
    counters = [info.counter for f in frames if (info := read_pattern(f)) is not None]
    assert len(counters) >= len(frames) // 2
    assert counters == sorted(counters)
    assert len(audio) >= 2 * 48_000
    assert abs(dominant_frequency(audio[-48_000:]) - recorder_process.TONE_HZ) < 15


class SteppedClock:
    """A monotonic clock the test moves by hand; counts how often it is read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def test_a_recording_is_synced_to_disk_every_two_seconds(tmp_path: Path) -> None:
    clock = SteppedClock()
    synced: list[str] = []

    def sync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.fsync(fd)

    async def items_written(count: int) -> None:
        """Waits until the writer thread took ``count`` more items (it reads the clock once
        an item)."""
        target = clock.reads + count
        async with asyncio.timeout(30):
            while clock.reads < target:
                await asyncio.sleep(0.01)

    async with recorder_process.fake_sources() as (local, mixer):
        recorder = recorder_module.Recorder(
            tmp_path,
            "synced",
            local,
            mixer,
            recorder_module.RemoteVideo(None),
            on_failure=lambda recorder, err: None,
            monotonic=clock,
            sync=sync,
        )
        await recorder.start()
        try:
            await items_written(10)
            clock.now = 1.9
            await items_written(10)
            assert synced == []  # not yet two seconds
            clock.now = 2.0
            await items_written(10)
            assert synced == [str(recorder.path)]
            clock.now = 3.9
            await items_written(10)
            assert len(synced) == 1
            clock.now = 4.1
            await items_written(10)
            assert len(synced) == 2
        finally:
            await recorder.stop()
    assert synced == [str(recorder.path)] * 3  # and once more as it closes
