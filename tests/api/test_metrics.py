"""GET /metrics: Prometheus' text format behind the API token, each kit with its own
registry; checked with prometheus_client's own parser after a real call between two kits."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import merge, validate
from appliance.daemon import Daemon
from appliance.media.counters import MediaCounters
from appliance.media.outgoing import FRAME_QUEUE, OutgoingVideo
from appliance.media.remote import JitterBuffer
from appliance.metrics import read_temperatures
from hal.audio.base import FRAME_SAMPLES, Route
from hal.audio.fake import FakeAudioOutput, FakeMicrophone
from tests.api.daemon import TOKEN, Api
from tests.daemons import kit_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample as {(name, sorted labels): value}, through prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def thermal_zone(root: Path, index: int, kind: str, temp: str) -> None:
    zone = root / f"thermal_zone{index}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(temp + "\n")


@contextlib.asynccontextmanager
async def two_kits(tmp: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    """room-a hosting the session server, room-b its kit; both with the API token TOKEN
    and room-a with a fake /sys/class/thermal."""
    thermal = tmp / "thermal"
    thermal_zone(thermal, 0, "cpu-thermal", "48500")
    thermal_zone(thermal, 1, "broken", "-273000000")  # a driver's placeholder: left out
    api = {"api": {"token": TOKEN}}
    host = Daemon(validate(merge(kit_config(tmp, "room-a", 400), api)), thermal_dir=thermal)
    await host.start()
    try:
        assert host.server is not None
        token = await host.server.create_user("room-b", "Room B")
        guest_config = kit_config(
            tmp, "room-b", 650, embedded=False, url=host.server.url, auth_token=token
        )
        guest = Daemon(validate(merge(guest_config, api)), thermal_dir=tmp / "none")
        await guest.start()
        try:
            yield host, guest
        finally:
            await guest.stop()
    finally:
        await host.stop()


async def scrape(api: Api) -> Samples:
    async with api.http.get(api.base + "/metrics", headers=api.headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(await response.text())


async def until(api: Api, check: Callable[[Samples], bool], timeout: float = 15.0) -> Samples:
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(api)
            if check(samples):
                return samples
            await asyncio.sleep(0.3)


async def test_metrics_need_the_api_token(tmp_path: Path) -> None:
    async with two_kits(tmp_path) as (host, _):
        assert host.api is not None
        api = Api(host.api.url)
        try:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
                async with api.http.get(api.base + "/metrics", headers=headers) as response:
                    assert response.status == 401
                    body = await response.json()
                    assert body["error"]["code"]
            samples = await scrape(api)
            assert value(samples, "callbox_calls_total") == 0
        finally:
            await api.close()


async def test_each_audio_devices_recovered_xruns_are_counted(tmp_path: Path) -> None:
    async with two_kits(tmp_path) as (host, _):
        assert host.api is not None and host.hardware is not None
        api = Api(host.api.url)
        try:
            xruns = "callbox_audio_device_xruns_total"
            before = await scrape(api)
            devices = {dict(k[1])["device"] for k in before if k[0] == xruns}
            assert devices == {"microphone", "speaker", "earpiece", "headphones", "bluetooth"}
            assert value(before, xruns, device="speaker") == 0
            speaker = cast(FakeAudioOutput, host.hardware.outputs[Route.SPEAKER])
            speaker.underrun()
            speaker.underrun()
            after = await scrape(api)
            assert value(after, xruns, device="speaker") == 2
            assert value(after, xruns, device="earpiece") == 0
            assert value(after, xruns, device="microphone") == 0
        finally:
            await api.close()


@pytest.mark.slow
async def test_metrics_after_a_call_between_two_kits(tmp_path: Path) -> None:
    async with two_kits(tmp_path) as (host, guest):
        assert host.api is not None and guest.api is not None
        host_api, guest_api = Api(host.api.url), Api(guest.api.url)
        try:
            before = await scrape(host_api)
            assert value(before, "callbox_in_call") == 0
            assert value(before, "callbox_server_sessions") == 0
            await host_api.ok("PUT", "/session", {"session_id": "standup"})
            await guest_api.ok("PUT", "/session", {"session_id": "standup"})

            def flowing(s: Samples) -> bool:
                return (
                    value(s, "callbox_video_frames_decoded_total") > 10
                    and value(s, "callbox_bitrate_in_bits_per_second") > 0
                    and value(s, "callbox_bitrate_out_bits_per_second") > 0
                )

            samples = await until(host_api, flowing)
            guest_samples = await until(guest_api, flowing)

            # The call, from both kits: each its own registry, its own figures.
            for s in (samples, guest_samples):
                assert value(s, "callbox_calls_total") == 1
                assert value(s, "callbox_in_call") == 1
                assert value(s, "callbox_participants") == 1
                assert value(s, "callbox_received_bytes_total") > 10_000
                assert value(s, "callbox_sent_bytes_total") > 10_000
                assert value(s, "callbox_process_cpu_seconds_total") > 0
                assert value(s, "callbox_video_frames_dropped_total") >= 0
                assert value(s, "callbox_audio_underruns_total") >= 0
                assert value(s, "callbox_ice_restarts_total") == 0
            uid = {k[1] for k in samples if k[0] == "callbox_kit_info"}
            assert uid == {(("name", "Room A"), ("uid", "room-a"), ("version", _version()))}

            # The machine: the fake thermal zone, the nonsense one left out.
            temps = {k[1]: v for k, v in samples.items() if k[0] == "callbox_temperature_celsius"}
            assert temps == {(("zone", "cpu-thermal"),): 48.5}
            assert not any(k[0] == "callbox_temperature_celsius" for k in guest_samples)

            # The embedded session server: the host's registry has it, the guest's does not.
            assert value(samples, "callbox_server_sessions") == 1
            assert value(samples, "callbox_server_connections") == 2
            relayed = value(samples, "callbox_server_relay_latency_seconds_count")
            assert relayed >= 2  # at least an offer and an answer crossed it
            assert value(samples, "callbox_server_relay_latency_seconds_sum") < relayed * 1.0
            assert not any(k[0].startswith("callbox_server_") for k in guest_samples)

            # An ICE restart (a new connection that carries media again) is counted.
            assert host.calls is not None and host.calls.session is not None
            await host.calls.session.peers["room-b"].restart()
            await until(host_api, lambda s: value(s, "callbox_ice_restarts_total") == 1, 30)

            # The far kit's microphone fails: its audio stops and our playout runs dry.
            assert guest.hardware is not None
            underruns = value(await scrape(host_api), "callbox_audio_underruns_total")
            cast(FakeMicrophone, guest.hardware.microphone).fail()
            await until(host_api, lambda s: value(s, "callbox_audio_underruns_total") > underruns)

            await guest_api.ok("DELETE", "/session")
            after = await until(host_api, lambda s: value(s, "callbox_participants") == 0)
            assert value(after, "callbox_calls_total") == 1
        finally:
            await host_api.close()
            await guest_api.close()


async def test_the_session_server_counts_refused_connections(tmp_path: Path) -> None:
    async with two_kits(tmp_path) as (host, _):
        assert host.api is not None and host.server is not None
        api = Api(host.api.url)
        try:
            ws_url = host.server.url.replace("http", "ws", 1) + "/v1/ws"
            async with api.http.ws_connect(ws_url) as ws:
                await ws.send_str(json.dumps({"type": "hello", "auth_token": "nobody"}))
                await ws.receive()
            samples = await until(
                api,
                lambda s: (
                    ("callbox_server_refused_connections_total", (("reason", "not-signed-in"),))
                    in s
                ),
            )
            refused = value(
                samples, "callbox_server_refused_connections_total", reason="not-signed-in"
            )
            assert refused == 1
            assert (
                value(samples, "callbox_server_refused_connections_total", reason="per-address")
                == 0
            )
        finally:
            await api.close()


async def test_a_standalone_session_server_serves_metrics_to_its_admin(tmp_path: Path) -> None:
    async with two_kits(tmp_path) as (host, _):
        assert host.server is not None
        server = host.server
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/metrics") as response:
                assert response.status == 401
            wrong = {"Authorization": "Bearer not-the-admin-key"}
            async with http.get(server.url + "/metrics", headers=wrong) as response:
                assert response.status == 403
            admin = {"Authorization": f"Bearer {server.admin_key}"}
            async with http.get(server.url + "/metrics", headers=admin) as response:
                assert response.status == 200
                samples = parse(await response.text())
        assert value(samples, "callbox_server_connections") == 2
        assert not any(k[0].startswith("callbox_calls") for k in samples)


def test_temperatures_are_read_from_each_sane_zone(tmp_path: Path) -> None:
    thermal_zone(tmp_path, 0, "cpu-thermal", "61234")
    thermal_zone(tmp_path, 1, "gpu", "not a number")
    thermal_zone(tmp_path, 2, "cpu-thermal", "40000")  # the same type again: by zone name
    (tmp_path / "thermal_zone3").mkdir()  # no files at all
    assert read_temperatures(tmp_path) == {"cpu-thermal": 61.234, "thermal_zone2": 40.0}
    assert read_temperatures(tmp_path / "missing") == {}


def test_a_jitter_buffer_that_runs_dry_counts_an_underrun() -> None:
    counters = MediaCounters()
    buffer = JitterBuffer(counters=counters)
    for _ in range(10):
        buffer.put(np.zeros(FRAME_SAMPLES, dtype=np.int16))
    while buffer.take(FRAME_SAMPLES) is not None:
        pass
    assert counters.audio_underruns == 1


async def test_frames_a_lagging_sender_never_took_are_counted_as_dropped() -> None:
    import av

    counters = MediaCounters()
    track = OutgoingVideo(lambda: None, counters)
    frame = av.VideoFrame(64, 48, "yuv420p")
    for _ in range(FRAME_QUEUE + 3):
        track.push_frame(frame)
    assert counters.frames_dropped == 3
    track.stop()


def _version() -> str:
    from appliance import __version__

    return __version__
