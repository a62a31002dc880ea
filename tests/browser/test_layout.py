"""The control page and the join page at a phone's width (390 px) and a desktop's: the page
is no wider than the screen and nothing sticks out of its card (long recording names, kit
names, links). Screenshots of each are kept in the test's directory."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from appliance.daemon import Daemon
from tests.api.daemon import TOKEN, api_client, running_daemon
from tests.browser.chromium import Page, chromium, chromium_path
from tests.kits import KitFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (make test)"),
]

SIZES = {"phone": (390, 844, True), "desktop": (1280, 800, False)}
LONG = "standup-" + "x" * 120  # a recording name with no place to break

# Everything visible that ends right of the page's width or of its section (card).
OVERFLOW = """(() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  if (document.documentElement.scrollWidth > width) {
    out.push(`page ${document.documentElement.scrollWidth} > ${width}`);
  }
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const card = el.closest("section");
    const limit = card && card !== el ? card.getBoundingClientRect().right : width;
    if (r.right > limit + 0.5) {
      const what = `${el.tagName.toLowerCase()}#${el.id}.${el.className}`;
      out.push(`${what} ends at ${r.right} > ${limit}`);
    }
  }
  return out;
})()"""


async def fits(page: Page, tmp: Path, name: str) -> None:
    for size, (width, height, mobile) in SIZES.items():
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        await page.evaluate("new Promise((done) => requestAnimationFrame(() => done(true)))")
        problems: Any = await page.evaluate(OVERFLOW)
        shot = tmp / f"{name}-{size}.png"
        await page.screenshot(shot)
        assert problems == [], f"{name} at {size} ({width} px): {problems} (see {shot})"
        assert png_width(shot) == width


def png_width(path: Path) -> int:
    return int(struct.unpack(">I", path.read_bytes()[16:20])[0])


async def test_the_control_page_fits_a_phone(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.server is not None and kit.calls is not None
        recordings = kit.calls.options.recordings_dir
        recordings.mkdir(parents=True, exist_ok=True)
        (recordings / f"{LONG}.mkv").write_bytes(b"\0" * 2048)
        await kit.server.create_user("lobby-" + "y" * 50, "The Lobby By The Long Corridor")
        far_kits = KitFactory(kit.server, tmp_path)
        try:
            await far_kits("room-b")
            await api.ok("PUT", "/session", {"session_id": "standup"})
            page = await browser.open(kit.api.url + "/")
            try:
                await page.type_into("#token", TOKEN)
                await page.click("#login-form button")
                await page.wait_for("document.body.dataset.state === 'active'")
                await page.wait_for("document.querySelectorAll('#kits li[data-uid]').length === 2")
                await page.wait_for(f"document.body.textContent.includes({LONG!r})")
                await page.click("#invite")
                await page.wait_for("document.querySelector('#invite-link').textContent !== 'none'")
                await fits(page, tmp_path, "control")
            finally:
                await page.close()
        finally:
            await far_kits.close()


async def test_the_join_page_fits_a_phone(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert isinstance(kit, Daemon) and kit.api is not None
        invite = await api.ok("POST", "/invites", {})
        page = await browser.open(f"{kit.api.url}{invite['url']}")
        try:
            await fits(page, tmp_path, "join-lobby")
            await page.click("#join")
            await page.wait_for("document.body.dataset.state === 'joined'")
            await fits(page, tmp_path, "join-call")
        finally:
            await page.close()
