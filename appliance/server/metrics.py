"""The session server's figures for ``GET /metrics``: sessions, connections, refused
connections and how long a signal takes to cross the server.

Each server has its own ``CollectorRegistry`` (several run in one test process); a kit that
embeds one adds the server's collectors to its own registry."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds from a signal's arrival to its being written to the other kit's socket.
RELAY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServerFigures(Protocol):
    """What the collector reads from the server at each scrape (on the event loop)."""

    def live_sessions(self) -> int: ...

    def live_connections(self) -> int: ...

    def refusals(self) -> dict[str, int]: ...


class _ServerCollector(Collector):
    def __init__(self, figures: ServerFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            "callbox_server_sessions", "Call sessions with someone in them"
        )
        sessions.add_metric([], self._figures.live_sessions())
        yield sessions
        connections = GaugeMetricFamily(
            "callbox_server_connections", "Signaling connections signed in"
        )
        connections.add_metric([], self._figures.live_connections())
        yield connections
        refused = CounterMetricFamily(
            "callbox_server_refused_connections",
            "Connections refused: per-address (too many from one address), header-timeout "
            "(no request in time), busy (server full), not-signed-in (no valid hello)",
            labels=["reason"],
        )
        for reason, count in sorted(self._figures.refusals().items()):
            refused.add_metric([reason], count)
        yield refused


class ServerMetrics:
    def __init__(self, figures: ServerFigures) -> None:
        self.registry = CollectorRegistry()
        self.relay_latency = Histogram(
            "callbox_server_relay_latency_seconds",
            "Seconds from a WebRTC signal reaching the server to its being sent on",
            buckets=RELAY_BUCKETS,
            registry=None,
        )
        self._collectors: list[Collector] = [_ServerCollector(figures), self.relay_latency]
        for collector in self._collectors:
            self.registry.register(collector)

    @property
    def collectors(self) -> Iterable[Collector]:
        """For a kit's registry, when this server is embedded in it."""
        return tuple(self._collectors)

    def observer(self) -> Callable[[float], None]:
        return self.relay_latency.observe
