"""GET /metrics: Prometheus text, per-agent figures, HTTP and event-loop instruments."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth import hash_password, new_api_token
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import GatewayFactory, browser, eventually, open_terminal


async def scrape(client: TestClient[Any, Any], **kwargs: Any) -> dict[tuple[str, str], float]:
    """{(sample name, its labels as k=v,...): value}."""
    response = await client.get("/metrics", **kwargs)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


async def test_agent_figures_follow_what_happens(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    who = f"agent={agent.name}"

    async def up() -> bool:
        return (await scrape(client))[("gateway_agent_up", who)] == 1

    await eventually(up, message="agent up in metrics")
    before = await scrape(client)
    assert before[("gateway_agent_viewers", who)] == 0
    assert before[("gateway_agent_upstream_connects_total", who)] == 1

    terminal = await open_terminal(client, agent.name)
    await terminal.wait_text("$")
    await terminal.send_input(b"echo counted-$((2*21))\r")
    await terminal.wait_text("counted-42")
    after = await scrape(client)
    assert after[("gateway_agent_viewers", who)] == 1
    for name in (
        "gateway_agent_upstream_bytes_total",
        "gateway_agent_output_bytes_total",
        "gateway_agent_viewer_bytes_total",
    ):
        assert after[(name, who)] > before[(name, who)], name

    async def caught_up() -> bool:
        # Once the shell is quiet, everything is emulated and nobody is behind.
        now = await scrape(client)
        return (
            now[("gateway_agent_emulator_lag_bytes", who)] == 0
            and now[("gateway_agent_viewer_queue_bytes_max", who)] == 0
        )

    await eventually(caught_up, message="no emulator lag and no viewer queue")
    await terminal.close()


async def test_requests_by_route_pattern_and_loop_lag(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    await client.get(f"/api/agents/{agent.name}/screen")
    await client.get("/api/agents/nope/screen")
    await client.get("/no/such/path")

    async def sampled() -> bool:  # a few loop-lag samples
        counts = await scrape(client)
        return counts[("gateway_event_loop_lag_cpu_seconds_count", "")] >= 2

    await eventually(sampled, message="loop-lag samples")
    samples = await scrape(client)
    route = "method=GET,route=/api/agents/{agent_id}/screen"
    assert samples[("gateway_http_requests_total", f"{route},status=200")] == 1
    assert samples[("gateway_http_requests_total", f"{route},status=404")] == 1
    assert samples[("gateway_http_requests_total", "method=GET,route=other,status=404")] == 1
    assert samples[("gateway_http_request_duration_seconds_count", route)] == 2
    assert samples[("gateway_event_loop_lag_seconds_count", "")] >= 2
    assert samples[("gateway_event_loop_lag_cpu_seconds_count", "")] >= 2


async def test_loop_lag_tells_busy_work_from_waiting(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)

    async def late(metric: str) -> float:
        samples = await scrape(client)
        return samples[(f"{metric}_count", "")] - samples[(f"{metric}_bucket", "le=0.1")]

    lag, cpu = "gateway_event_loop_lag_seconds", "gateway_event_loop_lag_cpu_seconds"

    async def counted(at_least: int) -> bool:
        return (await scrape(client))[(f"{lag}_count", "")] >= at_least

    await eventually(lambda: counted(1), message="a first sample")
    before = await late(lag), await late(cpu)
    time.sleep(0.4)  # the loop blocked, its thread off the CPU

    async def waited_counted() -> bool:
        return await late(lag) >= before[0] + 1

    await eventually(waited_counted, message="the late sample")
    waited = await late(lag), await late(cpu)
    assert waited[0] >= before[0] + 1
    assert waited[1] == before[1]  # not the gateway's work
    end = time.perf_counter() + 0.4
    while time.perf_counter() < end:  # the loop blocked by busy work
        pass

    async def busy_counted() -> bool:
        return await late(lag) >= waited[0] + 1 and await late(cpu) >= waited[1] + 1

    await eventually(busy_counted, message="the busy sample")
    busy = await late(lag), await late(cpu)
    assert busy[0] >= waited[0] + 1
    assert busy[1] >= waited[1] + 1


async def test_only_admins_read_metrics(agent: LocalAgent, gateway: GatewayFactory) -> None:
    token, digest = new_api_token()
    hashed = hash_password("pw")
    client = await gateway(
        agent,
        users=(
            User("ada", hashed, Role.ADMIN, api_token_sha256=digest),
            User("vic", hashed, Role.VIEWER),
        ),
    )
    assert (await client.get("/metrics")).status == 401
    vic = await browser(client, "vic", "pw")
    try:
        assert (await vic.get("/metrics")).status == 403
    finally:
        await vic.close()
    samples = await scrape(client, headers={"Authorization": f"Bearer {token}"})
    assert ("gateway_agent_up", f"agent={agent.name}") in samples
