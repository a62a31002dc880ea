"""Recordings over REST: list, download (whole and by range), delete."""

import asyncio

from appliance.daemon import Daemon
from tests.api.daemon import Api


async def test_record_list_download_by_range_and_delete(kit: Daemon, api: Api) -> None:
    assert kit.calls is not None
    await api.ok("PUT", "/session", {"session_id": "minutes"})
    view = await api.ok("POST", "/session/recording", {"recording": True})
    assert view["local"]["recording"] is True
    async with asyncio.timeout(10):  # the file appears with the first data written
        while not (listed := (await api.ok("GET", "/recordings"))["recordings"]):
            await asyncio.sleep(0.1)
    assert len(listed) == 1 and listed[0]["recording"] is True
    name = listed[0]["name"]
    status, reply = await api.call("DELETE", f"/recordings/{name}")
    assert (status, reply["error"]["code"]) == (409, "recording-in-progress")
    await asyncio.sleep(1.5)
    await api.ok("POST", "/session/recording", {"recording": False})
    await api.ok("DELETE", "/session")

    listed = (await api.ok("GET", "/recordings"))["recordings"]
    assert [(r["name"], r["recording"]) for r in listed] == [(name, False)]
    on_disk = (kit.config.recordings_dir / name).read_bytes()
    assert listed[0]["size"] == len(on_disk) > 1000
    assert on_disk[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (Matroska) header

    async with api.http.get(api.base + listed[0]["url"], headers=api.headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/x-matroska"
        assert await response.read() == on_disk
    headers = {**api.headers(), "Range": "bytes=100-199"}
    async with api.http.get(api.base + listed[0]["url"], headers=headers) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-199/{len(on_disk)}"
        assert await response.read() == on_disk[100:200]
    async with api.http.get(api.base + listed[0]["url"]) as response:
        assert response.status == 401

    assert (await api.call("DELETE", f"/recordings/{name}"))[0] == 204
    assert not (kit.config.recordings_dir / name).exists()
    assert (await api.call("DELETE", f"/recordings/{name}"))[0] == 404
    assert (await api.ok("GET", "/recordings"))["recordings"] == []


async def test_recording_names_cannot_leave_the_directory(api: Api) -> None:
    for name in ("..%2Fserver.db", ".hidden.mkv", "server.db", "a%2Fb.mkv"):
        status, reply = await api.call("GET", f"/recordings/{name}")
        assert status in (404, 422), (name, status)
        assert "error" in reply
