"""The control page in Chromium: log in with the token, and a click on Mute mutes the call
(the far kit stops hearing this kit)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.discovery import Discovery
from tests.api.daemon import TOKEN, api_client, running_daemon
from tests.api.test_join_requests import ask_to_join
from tests.browser.chromium import Page, chromium, chromium_path, page_at
from tests.kits import KitFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (make test)"),
]

KIT_TONE = 650.0


async def log_in(page: Page) -> None:
    await page.type_into("#token", TOKEN)
    await page.click("#login-form button")


async def test_a_click_on_mute_mutes_the_call(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path, hal={"audio": {"fake_tone_hz": KIT_TONE}}) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.server is not None and kit.calls is not None
        far_kits = KitFactory(kit.server, tmp_path)
        try:
            far = await far_kits("room-b")
            await api.ok("PUT", "/session", {"session_id": "standup"})
            await far.join("standup")
            await far.wait_to_hear(KIT_TONE, timeout=20)

            async with page_at(browser, kit.api.url + "/", tmp_path) as page:
                await log_in(page)
                await page.wait_for("document.body.dataset.state === 'active'")
                await page.wait_for(
                    "document.querySelectorAll('#participants li[data-uid]').length === 2"
                )
                await page.click("#mute")
                await page.wait_for("document.querySelector('#mute').dataset.on === 'true'")

            session = await api.ok("GET", "/session")
            assert session["local"]["audio_muted"] is True
            await far.wait_for(
                "onUserMuted",
                lambda data: data["muted"]["uid"] == "room-a" and data["is_muted"],
            )
            await far.wait_for_silence(timeout=20)
        finally:
            await far_kits.close()
            await asyncio.sleep(0)


async def test_the_page_lists_the_kits_calls_one_and_joins_a_session_by_id(
    tmp_path: Path,
) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.server is not None
        await kit.server.create_user("porch", "Porch")  # known, offline
        far_kits = KitFactory(kit.server, tmp_path)
        try:
            far = await far_kits("room-b")
            async with page_at(browser, kit.api.url + "/", tmp_path) as page:
                await log_in(page)
                await page.wait_for("document.querySelectorAll('#kits li[data-uid]').length === 2")
                kits = await page.evaluate(
                    "[...document.querySelectorAll('#kits li[data-uid]')].map(li => "
                    "[li.dataset.uid, li.querySelector('.badge').textContent, "
                    "li.querySelector('button').disabled])"
                )
                assert kits == [["room-b", "online", False], ["porch", "offline", True]]
                await page.click("#kits li[data-uid='room-b'] button")
                await far.wait_for("onIncomingCallReceived")
                await page.wait_for("document.body.dataset.state === 'ringing'")
                await page.click("#cancel")
                await page.wait_for("document.body.dataset.state === 'idle'")

                # A room by name: start (or join) a session id from the page.
                await page.type_into("#session-id", "standup")
                await page.click("#start")
                await page.wait_for("document.body.dataset.state === 'active'")
                assert (await api.ok("GET", "/session"))["session_id"] == "standup"
        finally:
            await far_kits.close()
            await asyncio.sleep(0)


async def test_kits_found_on_the_lan_are_marked_and_listed(tmp_path: Path) -> None:
    """With discovery on, a kit of the session server that is also announced on the LAN is
    marked so; a kit only announced (another server's) is listed with its own page, and no
    call button."""
    lan = {"enabled": True, "interfaces": ["127.0.0.1"], "address": "127.0.0.1"}
    async with (
        running_daemon(tmp_path, discovery=lan) as kit,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.server is not None
        await kit.server.create_user("room-b", "Room B")
        others = Discovery(["127.0.0.1"])
        try:
            await others.announce_kit(
                "room-b", "Room B", "127.0.0.1", "http://127.0.0.1:8081", 8081, None
            )
            await others.announce_kit(
                "porch", "Porch", "127.0.0.1", "http://127.0.0.1:8082", 8082, None
            )
            async with page_at(browser, kit.api.url + "/", tmp_path) as page:
                await log_in(page)
                await page.wait_for(
                    "document.querySelectorAll('#kits li[data-lan=\"true\"]').length === 2",
                    timeout=30,
                )
                rows = await page.evaluate(
                    "[...document.querySelectorAll('#kits li[data-uid]')].map(li => "
                    "[li.dataset.uid, li.dataset.lan || '', !!li.querySelector('button'), "
                    "li.querySelector('a') ? li.querySelector('a').href : ''])"
                )
                assert rows == [
                    ["room-b", "true", True, ""],
                    ["porch", "true", False, "http://127.0.0.1:8082/"],
                ]
        finally:
            await others.close()


async def test_settings_of_the_config_file_are_read_only_and_a_bad_address_is_explained(
    tmp_path: Path,
) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        api_client(kit) as api,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None
        async with page_at(browser, kit.api.url + "/", tmp_path) as page:
            await log_in(page)
            field = "document.querySelector('#settings [name=\"{}\"]')"
            await page.wait_for(field.format("kit.uid") + ".value === 'room-a'")
            for name, read_only in (
                ("kit.uid", True),
                ("server.url", True),
                ("kit.name", False),
                ("api.listen", False),
            ):
                assert await page.evaluate(field.format(name) + ".readOnly") is read_only, name
            await page.evaluate(field.format("kit.name") + ".value = 'Board room'")
            await page.evaluate(field.format("api.listen") + ".value = 'my-pi'")
            await page.click("#settings button[type=submit]")
            await page.wait_for("document.querySelector('#settings-error').textContent !== ''")
            error = await page.evaluate("document.querySelector('#settings-error').textContent")
            assert error.startswith("api.listen: 'my-pi' is not an address to listen on"), error
            await page.evaluate(field.format("api.listen") + ".value = '127.0.0.1:0'")
            await page.click("#settings button[type=submit]")
            await page.wait_for("document.querySelector('#kit-name').textContent === 'Board room'")
            config = (await api.ok("GET", "/config"))["config"]
            assert (config["kit"]["name"], config["kit"]["uid"]) == ("Board room", "room-a")


async def test_a_kit_that_fails_its_first_answer_says_why_on_the_token_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.calls is not None

        def broken() -> dict[str, object]:
            raise RuntimeError("the session view broke")

        monkeypatch.setattr(kit.calls, "snapshot", broken)
        async with page_at(browser, kit.api.url + "/", tmp_path) as page:
            await log_in(page)
            await page.wait_for(
                "document.querySelector('#login-error').textContent"
                ".includes('The kit did not answer: internal error')"
            )
            assert await page.evaluate(
                "document.querySelector('#app').classList.contains('hidden')"
            )
            # Mended, the same token opens the page with one click.
            monkeypatch.undo()
            await page.click("#login-form button")
            await page.wait_for("!document.querySelector('#app').classList.contains('hidden')")
            assert await page.evaluate("document.body.dataset.state") == "idle"


async def test_a_kit_asking_to_join_is_approved_from_the_page(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as kit,
        chromium(tmp_path / "profile") as browser,
    ):
        assert kit.api is not None and kit.server is not None
        request_id, _ = await ask_to_join(kit.server.url, "porch", "Porch")
        async with page_at(browser, kit.api.url + "/", tmp_path) as page:
            await log_in(page)
            await page.wait_for("!document.querySelector('#joins').classList.contains('hidden')")
            item = f"#join-requests li[data-id='{request_id}']"
            await page.wait_for(f'document.querySelector("{item}") !== null')
            shown = await page.evaluate(f'document.querySelector("{item}").textContent')
            assert "Porch (porch)" in shown and "ab" * 32 in shown
            await page.click(f"{item} button.ok")
            await page.wait_for("document.querySelector(\"#kits li[data-uid='porch']\") !== null")
            await page.wait_for("!document.querySelector('#join-requests li[data-id]')")
        assert await kit.server.store.user("porch") is not None
