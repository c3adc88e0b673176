"""``GET /metrics``: Prometheus text format (prometheus-client).

One registry per application (not the library's global one), so several
gateways in one process (the tests) never share counters. Agent figures
are read from the hubs at scrape time by a collector: nothing on the hot
path counts for the sake of metrics. HTTP requests are counted by a
middleware, labelled by route *pattern* (``/api/agents/{agent_id}``), never
by raw path, so label cardinality stays bounded. Event-loop lag is how late
a 100 ms sleep wakes up: the one figure that shows a blocked loop.

Only admins read it (a scraper uses an admin's bearer token), or anyone in
open mode, where everyone is an operator on loopback anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .audit import AuditLog
from .awareness.profile import STATES
from .awareness.watch import Awareness
from .core.fleet import Fleet
from .core.state import AgentState
from .tasks import running

# How often the event loop's lateness is sampled.
LAG_INTERVAL = 0.1
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FleetCollector(Collector):
    """Per-agent figures, read from the hubs when Prometheus asks."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=["agent"])

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["agent"])

        bytes_in = counter("gateway_agent_upstream_bytes", "Bytes from ttyd")
        published = counter("gateway_agent_output_bytes", "Terminal output bytes published")
        to_viewers = counter("gateway_agent_viewer_bytes", "Bytes handed to viewers' sockets")
        connects = counter("gateway_agent_upstream_connects", "Connections made to ttyd")
        resyncs = counter("gateway_agent_resyncs", "Viewers resynced by snapshot")
        viewers = gauge("gateway_agent_viewers", "Viewers connected now")
        lag = gauge("gateway_agent_emulator_lag_bytes", "Output not yet emulated")
        queued = gauge(
            "gateway_agent_viewer_queue_bytes_max", "The longest viewer queue (a lagging viewer)"
        )
        up = gauge("gateway_agent_up", "1 while connected to ttyd")
        for hub in self._fleet:
            stats = hub.statistics()
            labels = [stats.agent_id]
            upstream = stats.upstream
            bytes_in.add_metric(labels, upstream.bytes_in if upstream else 0)
            connects.add_metric(labels, upstream.connects if upstream else 0)
            published.add_metric(labels, stats.offset)
            to_viewers.add_metric(labels, stats.bytes_to_viewers)
            resyncs.add_metric(labels, stats.resyncs)
            viewers.add_metric(labels, stats.viewers)
            lag.add_metric(labels, stats.offset - stats.emulated_offset)
            queued.add_metric(labels, max((v.queued_bytes for v in hub.viewers), default=0))
            up.add_metric(labels, 1 if stats.state is AgentState.CONNECTED else 0)
        yield from (bytes_in, published, to_viewers, connects, resyncs, viewers, lag, queued, up)


class AwarenessCollector(Collector):
    """What the agents are doing: how many in each state, how long each has waited."""

    def __init__(self, awareness: Awareness) -> None:
        self._awareness = awareness

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "gateway_agents_by_state", "Agents in each state (gateway.awareness)", labels=["state"]
        )
        counts = dict.fromkeys(STATES, 0)
        for agent_id in self._awareness.agent_ids():
            verdict = self._awareness.verdict(agent_id)
            counts[verdict.state if verdict else "unknown"] += 1
        for state, count in counts.items():
            by_state.add_metric([state], count)
        waited = CounterMetricFamily(
            "gateway_agent_waiting_seconds",
            "Time spent waiting for an approval, an answer or a setup step",
            labels=["agent"],
        )
        for agent_id, seconds in self._awareness.waited().items():
            waited.add_metric([agent_id], seconds)
        yield from (by_state, waited)


class AuditCollector(Collector):
    """The audit trail's health: entries it could not write, and whether it writes."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def collect(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            "gateway_audit_dropped", "Audit entries lost: queue overflow, write errors, bad entries"
        )
        dropped.add_metric([], self._audit.dropped_total)
        writing = GaugeMetricFamily("gateway_audit_writer_up", "1 while the audit log is written")
        writing.add_metric([], 1 if self._audit.status == "ok" else 0)
        yield from (dropped, writing)


class Metrics:
    """The application's registry and the instruments fed outside the hubs."""

    def __init__(self, fleet: Fleet, audit: AuditLog) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(FleetCollector(fleet))
        self.registry.register(AuditCollector(audit))
        self.prompt_answers = Counter(
            "gateway_prompt_answers",
            "Answers to agents' prompts, by result (verified, unverified, or why refused)",
            ["result"],
            registry=self.registry,
        )
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request (streams and WebSockets excluded)",
            ["method", "route"],
            registry=self.registry,
        )
        lag_buckets = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
        self.loop_lag = Histogram(
            "gateway_event_loop_lag_seconds",
            "How late the event loop wakes a 100 ms timer",
            buckets=lag_buckets,
            registry=self.registry,
        )
        self.loop_lag_cpu = Histogram(
            "gateway_event_loop_lag_cpu_seconds",
            "The part of that lateness the loop's thread spent on a CPU: the gateway's "
            "own work (the rest is blocking calls, or a machine too busy to run it)",
            buckets=lag_buckets,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def watch_awareness(self, awareness: Awareness) -> None:
        """Agents by state and their waiting time, read from ``awareness`` at scrape time."""
        self.registry.register(AwarenessCollector(awareness))


def route_of(request: web.Request) -> str:
    """The route pattern that matched (bounded cardinality), or "other"."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "other"


def middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        streaming = False
        try:
            response = await handler(request)
            status = response.status
            streaming = isinstance(response, web.WebSocketResponse) or (
                response.content_type == "text/event-stream"
            )
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            if not streaming:
                metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)

    return count


async def watch_loop_lag(metrics: Metrics) -> AsyncIterator[None]:
    """cleanup_ctx body: sample the event loop's lateness while the app runs."""

    async def sample() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(LAG_INTERVAL)
            lag = max(0.0, loop.time() - before - LAG_INTERVAL)
            metrics.loop_lag.observe(lag)
            # What of the lateness the thread could have spent running: a
            # machine too busy to schedule it adds to the lag, not to this.
            metrics.loop_lag_cpu.observe(min(lag, time.thread_time() - cpu_before))

    async with running(sample(), "loop-lag"):
        yield
