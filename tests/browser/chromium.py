"""Headless Chromium driven over the DevTools protocol with aiohttp.

A few dozen lines of CDP (open a tab, evaluate, click with real input events) do what the
tests need, with Debian's own ``chromium`` and no driver download: playwright's browser
builds cannot be fetched here, and an async CDP client fits the tests' event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0

BASE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # Chromium keeps its default of hiding host candidates behind random mDNS names (x.local),
    # as a person's browser does: the kit learns the browser's address from its connectivity
    # checks (a peer-reflexive candidate), which is what happens on a real LAN.
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)


class CdpError(Exception):
    pass


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"]["args"]
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.console.append("exception: " + str(details.get("exception", details)))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(CdpError("the page's DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, COMMAND_TIMEOUT)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Until the expression is truthy; its value."""
        async with asyncio.timeout(timeout):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await asyncio.sleep(0.1)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element, as a person's would be: once
        the element is what that point shows, and has not moved since the last look (the
        page may still be laying out lists that load beside it, and a click computed
        before they shift the page lands on something else)."""
        box = await self.wait_for(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el || el.disabled) return null;
                el.scrollIntoView({{block: "center"}});
                const r = el.getBoundingClientRect();
                if (!r.width) return null;
                const x = r.x + r.width / 2, y = r.y + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                const key = `${{x}},${{y}}`;
                const still = window.__clickAt === key;
                window.__clickAt = key;
                return hit && el.contains(hit) && still ? {{x, y}} : null;
            }})()"""
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            f" el.focus(); el.select(); }})()"
        )
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> None:
        import base64

        data = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


class Chromium:
    def __init__(self, profile: Path, *flags: str) -> None:
        self._profile = profile
        self._flags = flags
        self._process: asyncio.subprocess.Process | None = None
        self._http = aiohttp.ClientSession()
        self._port = 0
        self.log = profile / "chromium.log"

    async def start(self) -> None:
        executable = chromium_path()
        if executable is None:
            raise CdpError("chromium is not installed (make test installs Debian's chromium)")
        self._profile.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                executable,
                *BASE_FLAGS,
                f"--user-data-dir={self._profile}",
                *self._flags,
                "about:blank",
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        port_file = self._profile / "DevToolsActivePort"
        async with asyncio.timeout(START_TIMEOUT):
            while not port_file.exists() or not port_file.read_text().strip():
                if self._process.returncode is not None:
                    raise CdpError("chromium exited:\n" + self.log.read_text()[-2000:])
                await asyncio.sleep(0.1)
        self._port = int(port_file.read_text().split()[0])

    async def open(self, url: str) -> Page:
        async with self._http.put(f"http://127.0.0.1:{self._port}/json/new?{url}") as response:
            target = await response.json(content_type=None)
        ws = await self._http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        await page.wait_for(
            f"location.href.startsWith({json.dumps(url.split('?')[0])})"
            " && document.readyState === 'complete'"
        )
        return page

    async def close(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await self._http.close()


@contextlib.asynccontextmanager
async def chromium(profile: Path, *flags: str) -> AsyncIterator[Chromium]:
    browser = Chromium(profile, *flags)
    try:
        await browser.start()
        yield browser
    finally:
        await browser.close()


@contextlib.asynccontextmanager
async def page_at(browser: Chromium, url: str, shots: Path) -> AsyncIterator[Page]:
    """A page at ``url``, closed on the way out; a failure inside leaves a screenshot in
    ``shots`` (page.png) and the page's console in the test's output."""
    page = await browser.open(url)
    try:
        yield page
    except BaseException:
        await page.screenshot(shots / "page.png")
        print("page console:", *page.console, sep="\n  ")
        raise
    finally:
        await page.close()
