"""The Origin rule: exact equality with a configured origin, nothing looser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.local import LocalAgent
from gateway.origins import HostPolicy, OriginPolicy, normalize_origin

from .conftest import GatewayFactory, eventually, raw_http, ws_connect

POLICY = OriginPolicy.of("https://gw.example.com", "http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://GW.Example.com", "https://gw.example.com"),
        ("https://gw.example.com:443", "https://gw.example.com"),
        ("http://gw.example.com:80/", "http://gw.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_config_origins_are_normalised_like_browsers_send_them(value: str, expected: str) -> None:
    assert normalize_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "gw.example.com",
        "ftp://gw.example.com",
        "https://gw.example.com/app",
        "https://user@gw.example.com",
        "https://gw.example.com.",
        "https://gw.example.com?x=1",
        "https://gw.example.com:99999",
        "null",
        "",
    ],
)
def test_bad_config_origins_are_refused(value: str) -> None:
    with pytest.raises(ConfigError):
        normalize_origin(value)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "null",
        "https://gw.example.com.",  # trailing dot
        "https://gw.example.com:8443",  # other port
        "http://gw.example.com",  # other scheme
        "https://evil-gw.example.com",
        "https://gw.example.com.evil.net",  # suffix trick
        "https://evil.net/https://gw.example.com",
        "https://gw.example.co",
        "https://GW.EXAMPLE.COM",  # browsers never send this
        "https://gw.example.com/",
        "https://gw.example.com, https://evil.net",
        "http://127.0.0.1:80800",
        "http://localhost:8080",  # same machine, other origin: not configured
    ],
)
def test_look_alike_origins_are_refused(header: str | None) -> None:
    assert not POLICY.allows(header)


def test_configured_origins_are_allowed() -> None:
    assert POLICY.allows("https://gw.example.com")
    assert POLICY.allows("http://127.0.0.1:8080")


@given(st.text(max_size=60))
def test_only_exact_configured_origins_pass(header: str) -> None:
    assert POLICY.allows(header) == (header in {"https://gw.example.com", "http://127.0.0.1:8080"})


@given(st.text(min_size=1, max_size=20))
def test_any_extension_of_an_allowed_origin_is_refused(suffix: str) -> None:
    assert not POLICY.allows("https://gw.example.com" + suffix)
    assert not POLICY.allows(suffix + "https://gw.example.com")


# --- at the gateway ---------------------------------------------------------------


async def _has_clients(agent: LocalAgent, count: int) -> bool:
    return await agent.client_count() == count


@pytest.mark.parametrize(
    "origin",
    [None, "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}", "http://127.0.0.1:{port}."],
)
async def test_foreign_origin_upgrade_is_403_and_joins_nothing(
    agent: LocalAgent, gateway: GatewayFactory, origin: str | None
) -> None:
    client = await gateway(agent)
    await eventually(lambda: _has_clients(agent, 1), message="the gateway's upstream")
    header = None if origin is None else origin.format(port=client.port)
    with pytest.raises(WSServerHandshakeError) as info:
        await ws_connect(client, f"/agents/{agent.name}/ws", origin=header)
    assert info.value.status == 403
    stats: Any = (await (await client.get("/api/agents")).json())["agents"][0]
    assert stats["viewers"] == 0
    assert await _has_clients(agent, 1)


async def test_foreign_origin_cannot_post(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    response = await client.post("/api/agents", headers={"Origin": "https://evil.net"})
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden_origin"
    # With the right origin the request gets as far as routing (no POST route yet).
    allowed = await client.post(
        "/api/agents", headers={"Origin": f"http://127.0.0.1:{client.port}"}
    )
    assert allowed.status == 405


async def test_extra_origin_is_allowed(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent, extra_origins=("http://localhost:1234",))
    ws = await ws_connect(client, f"/agents/{agent.name}/ws", origin="http://localhost:1234")
    await ws.close()


# --- Host: DNS rebinding ------------------------------------------------------------

HOSTS = HostPolicy.of("https://gw.example.com", "http://127.0.0.1:8080", "http://[::1]:8080")


@pytest.mark.parametrize(
    "host",
    ["gw.example.com", "GW.Example.COM", "gw.example.com:443", "127.0.0.1:8080", "[::1]:8080"],
)
def test_the_gateway_s_own_hosts(host: str) -> None:
    assert HOSTS.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "gw.example.com.",
        "gw.example.com:8443",
        "gw.example.com:80",
        "gw.example.com.evil.example",
        "evil-gw.example.com",
        "127.0.0.1",
        "127.0.0.1:80",
        "127.0.0.1:8080 ",
        "localhost:8080",
        "[::1]",
        "gw.example.com@evil.example",
        "gw.example.com\r\nX: y",
    ],
)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert not HOSTS.allows(host)


async def raw_request(port: int, head: str) -> tuple[int, bytes]:
    raw = await raw_http(port, head.encode() + b"Connection: close\r\n\r\n")
    status = int(raw.split(b" ", 2)[1])
    return status, raw.partition(b"\r\n\r\n")[2]


async def test_a_rebound_name_reads_nothing(agent: LocalAgent, gateway: GatewayFactory) -> None:
    """Open mode, where a same-origin page on a rebound name would otherwise read everything."""
    client = await gateway(agent, extra_origins=("http://localhost:1",))
    port = client.port
    for host in ("evil.example", f"evil.example:{port}", f"localhost:{port}", "127.0.0.1"):
        for path in ("/api/agents", f"/api/agents/{agent.name}/screen", "/metrics", "/"):
            status, body = await raw_request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n")
            assert status == 421, (host, path)
            assert json.loads(body)["error"] == "misdirected_request"
    # No Host at all (HTTP/1.0) is no better.
    assert (await raw_request(port, "GET /api/agents HTTP/1.0\r\n"))[0] == 421
    # The WebSocket upgrade too, even with the right Origin.
    upgrade = (
        f"GET /agents/{agent.name}/ws HTTP/1.1\r\nHost: evil.example:{port}\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: tty\r\n"
    )
    assert (await raw_request(port, upgrade))[0] == 421
    # The gateway's own names work; a health check from this machine may use any.
    assert (await raw_request(port, f"GET /api/agents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"))[
        0
    ] == 200
    assert (await raw_request(port, "GET /healthz HTTP/1.1\r\nHost: gateway:8080\r\n"))[0] == 200
    assert (await raw_request(port, "GET /readyz HTTP/1.1\r\nHost: gateway:8080\r\n"))[0] == 200
