"""The benchmark's own helpers: numbers it reports must mean what they say."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from bench.harness import Drainer, cpu_seconds, machine_busy_seconds, percentile
from bench.workloads import Marker, _bucket_quantile, _metric, _scrape, colour_text, plain_text
from gateway.appkeys import FLEET
from gateway.auth import hash_password
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import GatewayFactory, eventually, origin_of


def test_percentiles_pick_from_the_sorted_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) in (50.0, 51.0)
    assert percentile(values, 99) == 99.0
    assert percentile(list(reversed(values)), 0) == 1.0
    assert percentile([], 50) != percentile([], 50)  # NaN: nothing measured


def test_a_marker_split_across_chunks_is_seen_once_when_it_completes() -> None:
    marker = Marker("B1-DONE-42")
    marker(b"output... B1-DO", 1.0)
    assert marker.at is None
    marker(b"NE-42\r\n", 2.0)
    assert marker.at == 2.0
    marker(b"B1-DONE-42", 3.0)
    assert marker.at == 2.0


def test_streams_are_whole_lines_of_the_asked_size() -> None:
    for make in (plain_text, colour_text):
        data = make(100_000)
        assert 99_000 < len(data) <= 100_000
        assert data.endswith(b"\n")
        assert make(100_000) == data  # seeded: every run measures the same bytes
    # No escape sequence is cut at the end (it would swallow the end marker).
    assert colour_text(100_000).rsplit(b"\n", 2)[-2].endswith(b"\x1b[0m")


def test_cpu_seconds_grow_with_work() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


def test_the_machine_is_seen_busy_while_we_work() -> None:
    before = machine_busy_seconds()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    assert machine_busy_seconds() - before >= 0.2


def test_a_quantile_is_the_bound_of_its_bucket_over_what_happened_in_between() -> None:
    # Cumulative counts, as Prometheus keeps them: 10 samples before, 100 after.
    before = {0.01: 10.0, 0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}
    after = {0.01: 60.0, 0.1: 108.0, 1.0: 110.0, float("inf"): 110.0}
    assert _bucket_quantile(before, after, 50) == 0.01
    assert _bucket_quantile(before, after, 98) == 0.1
    assert _bucket_quantile(before, after, 99) == 1.0


async def test_a_drainer_watches_through_the_gateway_and_counts_what_arrives(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    where = SimpleNamespace(port=client.port, origin=origin_of(client))
    async with Drainer(where, agent.name) as drainer:  # type: ignore[arg-type]
        hub = client.app[FLEET].get(agent.name)
        await eventually(lambda: len(hub.viewers) == 1, message="a viewer joined")
        # Its first frame is the snapshot: the whole screen arrives.
        await eventually(lambda: drainer.received > 100, message="the snapshot arrived")
        before = drainer.received
        await agent.tmux("send-keys", "-t", agent.name, "echo drained", "Enter")
        await eventually(lambda: drainer.received > before, message="live output arrived")
    await eventually(lambda: len(hub.viewers) == 0, message="the viewer left")


async def test_the_metrics_scrape_is_read_and_a_refusal_is_an_error(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    stack = SimpleNamespace(port=client.port)
    up = await _metric(stack, "gateway_agent_up", agent.name)  # type: ignore[arg-type]
    assert up in (0.0, 1.0)  # a figure, not nan: the scrape was let in
    refused = await gateway(agent, users=(User("admin", hash_password("pw"), Role.ADMIN),))
    with pytest.raises(RuntimeError, match="401"):
        await _scrape(SimpleNamespace(port=refused.port))  # type: ignore[arg-type]


def test_b11_measures_a_look_on_every_recorded_screen() -> None:
    from bench.awareness import b11_awareness

    rows = b11_awareness(rounds=1)
    metrics = {r["metric"]: r for r in rows}
    assert "pyte: a look (text + classify), p50" in metrics
    assert all(r["gateway"] > 0 for r in rows)
    assert metrics["pyte: a look (text + classify), p50"]["note"].startswith("39 real screens")
