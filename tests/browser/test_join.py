"""A person's browser joins the kit's call from an invite link: real headless Chromium with
fake devices, the kit on fake hardware, media both ways proved with data."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from appliance.daemon import Daemon
from hal.audio.base import Route
from hal.audio.fake import FakeAudioOutput
from hal.audio.pcm import dominant_frequency, rms_dbfs
from hal.camera.pattern import colour_distance, kit_colour, read_pattern
from tests.api.daemon import api_client, running_daemon
from tests.browser.chromium import Page, chromium, chromium_path, page_at
from tests.browser.media import BROWSER_TONE_HZ, write_pattern_y4m, write_tone_wav

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (make test)"),
]


async def until(condition: Any, timeout: float = 30.0, what: str = "") -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.1)


async def shows_colour(page: Page, uid: str, samples: int = 20) -> None:
    """The page's tile of ``uid`` shows that kit's colour. Sampled until it does: under
    load the first frames after a keyframe can be coarse enough (H.264 at a low starting
    rate) to shift the colour for a moment; the samples seen are the failure's message."""
    seen = []
    for _ in range(samples):
        colour = tuple(await page.wait_for(f"window.callbox.sampleColour('{uid}')"))
        if colour_distance(colour, kit_colour(uid)) < 60:
            return
        seen.append(colour)
        await asyncio.sleep(0.25)
    raise AssertionError(f"{uid}'s tile never showed {kit_colour(uid)}: {seen}")


def speaker(daemon: Daemon) -> FakeAudioOutput:
    assert daemon.hardware is not None
    return cast(FakeAudioOutput, daemon.hardware.outputs[Route.SPEAKER])


def hears(daemon: Daemon, hz: float) -> bool:
    pcm = speaker(daemon).recent(0.3)
    return len(pcm) > 0 and abs(dominant_frequency(pcm) - hz) < 15 and rms_dbfs(pcm) > -45


async def page_stats(page: Page, uid: str) -> dict[str, Any]:
    stats = await page.evaluate("window.callbox.stats()")
    return cast(dict[str, Any], stats.get(uid) or {})


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_browser_joins_from_an_invite(tmp_path: Path, codec: str) -> None:
    camera_file, mic_file = tmp_path / "camera.y4m", tmp_path / "mic.wav"
    await asyncio.to_thread(write_pattern_y4m, camera_file)
    await asyncio.to_thread(write_tone_wav, mic_file)
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(
            tmp_path / "profile",
            f"--use-file-for-fake-video-capture={camera_file}",
            f"--use-file-for-fake-audio-capture={mic_file}",
        ) as browser,
    ):
        assert kit.calls is not None and kit.api is not None
        # Force the codec on both sides: the kit's transceivers and the page's preferences.
        kit.calls.options = replace(kit.calls.options, video_codec=codec)
        await api.ok("PUT", "/session", {"session_id": f"browser-{codec.lower()}"})
        invite = await api.ok("POST", "/invites", {})

        async with page_at(
            browser, f"{kit.api.url}{invite['url']}?codec={codec}", tmp_path
        ) as page:
            await page.type_into("#name", "Alice")
            await page.click("#join")
            session = kit.calls.session
            assert session is not None
            guest = await until(
                lambda: next((u for u in session.participants if u.startswith("guest-")), None),
                what="the guest joins",
            )
            assert session.participants[guest].name == "Alice"

            # The kit decodes the browser's camera: the pattern's counter moves on.
            def counter() -> int | None:
                frame = session.remote_video.latest.get(guest)
                info = read_pattern(frame) if frame is not None else None
                return info.counter if info else None

            first = await until(counter, what="a readable frame from the browser")
            await until(lambda: (counter() or first) - first >= 10, what="ten more frames")

            # The kit hears the browser's microphone on its speaker.
            await until(lambda: hears(kit, BROWSER_TONE_HZ), what="the browser's tone")

            # The browser decodes the kit's video, in the forced codec, showing the kit.
            start = await _until_stats(page, "room-a", lambda s: s["video"]["framesDecoded"] > 0)
            later = await _until_stats(
                page,
                "room-a",
                lambda s: s["video"]["framesDecoded"] >= start["video"]["framesDecoded"] + 20,
            )
            assert later["video"]["codec"].lower() == f"video/{codec.lower()}"
            assert later["sent"]["codec"].lower() == f"video/{codec.lower()}"
            assert later["video"]["frameWidth"] == 320
            await shows_colour(page, "room-a")

            # Muting on the kit is seen in the browser: the flag and the silence.
            await _until_stats(page, "room-a", lambda s: s["audio"]["audioLevel"] > 0.05)
            await api.ok("POST", "/session/mute-audio", {"muted": True})
            await page.wait_for(
                "document.querySelector('#participants li[data-uid=\"room-a\"]')"
                "?.dataset.muted === 'true'"
            )
            await _until_stats(page, "room-a", lambda s: s["audio"]["audioLevel"] < 0.01)


async def _until_stats(page: Page, uid: str, check: Any, timeout: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            stats = await page_stats(page, uid)
            if stats.get("video") and stats.get("audio") and check(stats):
                return stats
            await asyncio.sleep(0.2)


async def test_a_guest_on_plain_http_is_told_to_use_https(tmp_path: Path) -> None:
    """A browser on another machine (here a name that is not loopback) gets no camera over
    plain HTTP: the page says so and how to fix it, instead of a JavaScript error."""
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile", "--host-resolver-rules=MAP kit.lan 127.0.0.1") as browser,
    ):
        assert kit.api is not None
        await api.ok("PUT", "/session", {"session_id": "plain"})
        invite = await api.ok("POST", "/invites", {})
        port = kit.api.url.rsplit(":", 1)[1]
        page = await browser.open(f"http://kit.lan:{port}{invite['url']}")
        try:
            error = await page.wait_for(
                "document.getElementById('error').textContent || null", timeout=30
            )
            assert "HTTPS" in error and f"https://kit.lan:{port}/join/" in error
            assert await page.evaluate("document.getElementById('join').disabled") is True
        finally:
            await page.close()


async def test_a_meeting_link_starts_the_call_ends_and_joins_again(tmp_path: Path) -> None:
    """A link made while the kit is idle: opening it starts the call on the kit; the guest
    leaves (the kit, alone, ends the call: the 1:1 rule), the page says the call ended and
    offers to join again, and the same link does."""
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.calls is not None and kit.api is not None
        invite = await api.ok("POST", "/invites", {"uses": 5})
        async with page_at(browser, f"{kit.api.url}{invite['url']}", tmp_path) as page:
            for round_ in range(2):
                await page.click("#join")
                await page.wait_for("document.body.dataset.state === 'joined'")
                session = kit.calls.session
                assert session is not None and session.session_id == invite["session_id"]
                await until(lambda s=session: any(u.startswith("guest-") for u in s.participants))
                await page.click("#leave")
                await until(lambda: kit.calls is not None and kit.calls.session is None)
                await page.wait_for("document.body.dataset.state === 'ended'")
                shown = await page.evaluate(
                    "[getComputedStyle(document.querySelector('#ended-box')).display, "
                    "document.querySelector('#ended-box').textContent, "
                    "document.querySelector('#join').textContent, "
                    "document.querySelector('#join').disabled]"
                )
                assert shown[0] != "none", round_
                assert "Call ended" in shown[1] and "You left the call." in shown[1]
                assert shown[2:] == ["Join again", False]
