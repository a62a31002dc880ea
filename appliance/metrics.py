"""A kit's figures for ``GET /metrics`` (Prometheus' text format): its calls and what they
carry, the CPU it uses and how warm it runs, and, when it embeds the session server, the
server's figures too.

Every kit has its own ``CollectorRegistry`` (several kits run in one test process). The
collector reads the call API's counters as they are at the scrape; the files under
``/sys/class/thermal`` and ``/proc`` are read in a thread first, so a slow sysfs never holds
up the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from appliance import __version__
from appliance.calls import Calls, SessionState
from appliance.calls.snapshot import media_links

THERMAL_DIR = Path("/sys/class/thermal")
# A zone reading outside this range (millidegrees) is a driver's placeholder, not a reading.
SANE_MILLI_CELSIUS = (-60_000, 150_000)


@dataclass(frozen=True)
class SystemReading:
    """What the kit's machine reports, read in a thread before each scrape."""

    temperatures: dict[str, float] = field(default_factory=dict)  # zone type -> Celsius
    load_1m: float | None = None
    cpu_seconds: float = 0.0  # this process, user + system
    cpus: int = 1


def read_temperatures(thermal_dir: Path) -> dict[str, float]:
    """Each thermal zone's temperature in degrees Celsius, by its type (``cpu-thermal`` on
    a Pi); zones that cannot be read or read nonsense are left out."""
    found: dict[str, float] = {}
    try:
        zones = sorted(thermal_dir.glob("thermal_zone*"))
    except OSError:
        return found
    for zone in zones:
        try:
            raw = (zone / "temp").read_text().strip()
            kind = (zone / "type").read_text().strip() or zone.name
        except (OSError, UnicodeDecodeError):
            continue
        try:
            milli = int(raw)
        except ValueError:
            continue
        if not SANE_MILLI_CELSIUS[0] <= milli <= SANE_MILLI_CELSIUS[1]:
            continue
        name = kind if kind not in found else zone.name
        found[name[:64]] = milli / 1000.0
    return found


def read_system(thermal_dir: Path) -> SystemReading:
    load: float | None = None
    with contextlib.suppress(OSError):
        load = os.getloadavg()[0]
    times = os.times()
    return SystemReading(
        temperatures=read_temperatures(thermal_dir),
        load_1m=load,
        cpu_seconds=times.user + times.system,
        cpus=os.cpu_count() or 1,
    )


class _KitCollector(Collector):
    def __init__(self, metrics: KitMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        calls = metrics.calls
        counters = calls.counters
        snapshot = calls.call_snapshot()
        info = InfoMetricFamily("callbox_kit", "This kit")
        info.add_metric([], {"uid": calls.uid, "name": metrics.name, "version": __version__})
        yield info

        yield _counter("callbox_calls", "Call sessions this kit started or joined", counters.calls)
        in_call = calls.state == SessionState.ACTIVE
        yield _gauge("callbox_in_call", "1 while a call is active", 1 if in_call else 0)
        participants = len(snapshot.participants) if snapshot is not None and in_call else 0
        yield _gauge("callbox_participants", "Other participants in the call now", participants)
        links = media_links(calls)
        yield _gauge(
            "callbox_bitrate_in_bits_per_second",
            "Bits a second arriving from every peer (mesh calls), over the last second",
            sum(link.bitrate_in for link in links.values()),
        )
        yield _gauge(
            "callbox_bitrate_out_bits_per_second",
            "Bits a second sent to every peer (mesh calls), over the last second",
            sum(link.bitrate_out for link in links.values()),
        )
        yield _counter(
            "callbox_received_bytes", "Bytes received on call connections", counters.bytes_received
        )
        yield _counter("callbox_sent_bytes", "Bytes sent on call connections", counters.bytes_sent)
        yield _counter(
            "callbox_video_frames_decoded",
            "Video frames decoded from other participants",
            counters.frames_decoded,
        )
        yield _counter(
            "callbox_video_frames_dropped",
            "Local video frames (or camera packets) dropped because a peer's sender lagged",
            counters.frames_dropped,
        )
        yield _counter(
            "callbox_audio_underruns",
            "Times a participant's audio ran dry before the mixer needed it",
            counters.audio_underruns,
        )
        xruns = CounterMetricFamily(
            "callbox_audio_device_xruns",
            "Under- and overruns an audio device recovered from (it ran dry or its reader fell"
            " behind: a stalled process, an overloaded CPU), by device",
            labels=["device"],
        )
        for device, count in sorted(metrics.audio_xruns().items()):
            xruns.add_metric([device], count)
        yield xruns
        yield _counter(
            "callbox_ice_restarts",
            "Peer connections replaced by new ones (ICE restarts) that carried media again",
            counters.ice_restarts,
        )

        system = metrics.system
        yield _counter(
            "callbox_process_cpu_seconds",
            "CPU seconds (user and system) of the daemon's process",
            system.cpu_seconds,
        )
        if system.load_1m is not None:
            yield _gauge(
                "callbox_cpu_load_ratio",
                "The machine's 1-minute load average divided by its CPUs",
                system.load_1m / system.cpus,
            )
        temperature = GaugeMetricFamily(
            "callbox_temperature_celsius",
            "Temperature of each thermal zone (/sys/class/thermal), by its type",
            labels=["zone"],
        )
        for zone, celsius in sorted(system.temperatures.items()):
            temperature.add_metric([zone], celsius)
        yield temperature


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class KitMetrics:
    """One kit's registry: ``await render()`` gives the text ``GET /metrics`` serves."""

    def __init__(
        self,
        calls: Calls,
        *,
        name: str,
        thermal_dir: Path = THERMAL_DIR,
        server_collectors: Iterable[Collector] = (),
        audio_xruns: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.calls = calls
        self.name = name
        self.audio_xruns = audio_xruns  # read at each scrape (Hardware.audio_xruns)
        self.thermal_dir = thermal_dir
        self.system = SystemReading()
        self.registry = CollectorRegistry()
        self.registry.register(_KitCollector(self))
        for collector in server_collectors:
            self.registry.register(collector)
        self._lock = asyncio.Lock()
        self._read_at = 0.0

    async def render(self) -> bytes:
        async with self._lock:  # one sysfs read at a time, however many scrapers
            now = time.monotonic()
            if now - self._read_at >= 1.0:  # a scraper hammering us reads sysfs once a second
                self.system = await asyncio.to_thread(read_system, self.thermal_dir)
                self._read_at = now
            return generate_latest(self.registry)
