"""Security checks across modules, against the real gateway and real ttyd + tmux.

Origin, login, roles, links and limits have their own modules; this one
covers what crosses them: forwarded headers, frames a spectator could craft
with a raw WebSocket client, throttling over HTTP, and secrets in logs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway import ttyd
from gateway.appkeys import AUDIT, FLEET
from gateway.auth import FREE_FAILURES, Role, User, hash_password
from gateway.proxies import ProxyPolicy, parse_networks

from .conftest import (
    AgentFactory,
    GatewayFactory,
    browser,
    eventually,
    origin_of,
    timeout,
    ws_connect,
)

PASSWORD = "s3cret-passphrase-for-tests"

PROXY = ProxyPolicy(parse_networks(["10.0.0.0/8", "127.0.0.1"], "test"))


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    assert PROXY.client("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    # A client cannot put itself behind our proxy's back.
    assert PROXY.client("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert PROXY.client("203.0.113.9", "127.0.0.1") == "203.0.113.9"
    assert ProxyPolicy().client("127.0.0.1", "203.0.113.7") == "127.0.0.1"
    assert PROXY.client("127.0.0.1", None) == "127.0.0.1"


@given(st.text(max_size=80))
def test_an_untrusted_peer_is_never_overridden(header: str) -> None:
    assert PROXY.client("192.0.2.55", header) == "192.0.2.55"


@pytest.fixture
async def secured(make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path) -> Any:
    agent = await make_agent("target")
    users = (
        User("op", hash_password(PASSWORD), Role.OPERATOR, ("*",)),
        User("view", hash_password(PASSWORD), Role.VIEWER, ("*",)),
    )
    client = await gateway(agent, users=users, trusted_proxies=("127.0.0.1",))
    return client, agent, tmp_path / "state" / "audit.jsonl"


async def login(client: TestClient[Any, Any], name: str) -> aiohttp.ClientSession:
    return await browser(client, name, PASSWORD)


async def test_forged_forwarded_headers_change_nothing(secured: Any) -> None:
    client, _, audit_path = secured
    headers = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.7",
        "Origin": "https://evil.example",
    }
    # The Origin check does not look at forwarded headers.
    response = await client.post(
        "/api/login", json={"username": "op", "password": "x"}, headers=headers
    )
    assert response.status == 403
    ok = await client.post(
        "/api/login",
        json={"username": "op", "password": PASSWORD},
        headers={**headers, "Origin": origin_of(client)},
    )
    assert ok.status == 200
    # The one trusted proxy is 127.0.0.1 (the test client), so its header names the client.
    assert "Secure" not in ok.headers["Set-Cookie"]  # X-Forwarded-Proto did not make it https
    await client.app[AUDIT].flush()
    logins = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert logins[-1]["event"] == "login"
    assert logins[-1]["address"] == "203.0.113.7"


async def test_viewer_raw_frames_never_reach_ttyd(secured: Any) -> None:
    """Fragmented, text, binary, every command byte: nothing gets through."""
    client, agent, _ = secured
    view = await login(client, "view")
    cookie = "; ".join(f"{c.key}={c.value}" for c in view.cookie_jar)
    url = f"ws://127.0.0.1:{client.port}/agents/target/ws"
    async with websockets.connect(
        url,
        subprotocols=[websockets.Subprotocol("tty")],
        origin=websockets.Origin(origin_of(client)),
        additional_headers={"Cookie": cookie},
        compression=None,
    ) as ws:
        await ws.send(ttyd.Handshake("", 33, 11).serialize())
        await ws.send([b"0echo frag", b"mented-", b"input\r"])  # one message, three frames
        await ws.send(["0echo text-", "fragments\r"])
        await ws.send("0echo plain-text\r")
        await ws.send(b'1{"columns": 20, "rows": 5}')
        for command in b"023":
            await ws.send(bytes([command]) + b"echo by-byte\r")
        notices = []
        async for message in ws:
            if isinstance(message, bytes) and message.startswith(b"N"):
                notices.append(json.loads(message[1:])["code"])
                break
        assert notices == ["read_only"]
        # A malformed frame from a viewer is still a protocol error: a clean 1002.
        await ws.send(b"1{not json")
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async for _ in ws:
                pass
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1002
    await view.close()
    pane = await agent.capture()
    for text in ("fragmented-input", "text-fragments", "plain-text", "by-byte"):
        assert text not in pane
    assert await agent.pane_size() == (80, 24)


async def test_throttled_logins_get_429(secured: Any) -> None:
    client, _, _ = secured
    headers = {"Origin": origin_of(client)}
    for _ in range(FREE_FAILURES):
        response = await client.post(
            "/api/login", json={"username": "op", "password": "wrong"}, headers=headers
        )
        assert response.status == 401
    throttled = await client.post(
        "/api/login", json={"username": "op", "password": PASSWORD}, headers=headers
    )
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    oversized = await client.post(
        "/api/login", json={"username": "view", "password": "x" * 100_000}, headers=headers
    )
    assert oversized.status == 401


async def test_no_secret_in_logs_or_errors(secured: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A run with logins, a link, a bad token, bad input and a server-side error."""
    caplog.set_level(logging.DEBUG)
    client, _, audit_path = secured
    op = await login(client, "op")
    link = await (await op.post("/api/agents/target/shares", json={"ttl_seconds": 600})).json()
    token = link["url"].rsplit("/", 1)[1]
    await op.get(f"/s/{token}", allow_redirects=False)
    await op.get(f"/s/{token}x", allow_redirects=False)
    await op.post("/api/agents/target/input", data=b"{broken json")
    cookie = next(c.value for c in op.cookie_jar if c.key == "gateway_session")
    # A handler that fails: the error body must not echo what the client sent.
    hub = client.app[FLEET].get("target")
    original = hub.send_input

    async def broken(data: bytes) -> None:
        raise RuntimeError("simulated failure")

    hub.send_input = broken  # type: ignore[method-assign]
    failure = await op.post("/api/agents/target/input", json={"data": "echo hi\r"})
    hub.send_input = original  # type: ignore[method-assign]
    assert failure.status == 500
    body = await failure.text()
    await op.close()
    await client.app[AUDIT].flush()
    logged = caplog.text + audit_path.read_text()
    for secret in (PASSWORD, token, cookie):
        assert secret not in logged
        assert secret not in body


async def test_upgrade_without_a_session_or_with_a_foreign_origin(secured: Any) -> None:
    client, agent, _ = secured
    url = f"/agents/{agent.name}/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await client.ws_connect(url, protocols=("tty",), headers={"Origin": origin_of(client)})
    assert anonymous.value.status == 401
    op = await login(client, "op")
    csrf = await op.post(
        "/api/agents/target/shares",
        json={"ttl_seconds": 600},
        headers={"Origin": "https://evil.example"},
    )
    assert csrf.status == 403
    assert (await op.get("/api/shares")).status == 200
    assert (await (await op.get("/api/shares")).json())["shares"] == []
    await op.close()


async def test_handshake_timeout_heartbeat_and_no_deflate(
    make_agent: AgentFactory, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.routes.HANDSHAKE_TIMEOUT", 0.3)
    monkeypatch.setattr("gateway.routes.HEARTBEAT", 0.3)
    agent = await make_agent("quiet")
    client = await gateway(agent)
    silent = await ws_connect(client, "/agents/quiet/ws")
    message = await silent.receive(timeout=timeout(5))
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert silent.close_code == 1008  # no handshake in time
    # A peer that stops answering pings is dropped.
    dead = await client.ws_connect(
        "/agents/quiet/ws",
        protocols=("tty",),
        headers={"Origin": origin_of(client)},
        autoping=False,
        compress=15,
    )
    assert dead.compress == 0  # permessage-deflate was offered and refused
    await dead.send_bytes(ttyd.Handshake().serialize())
    while (await dead.receive(timeout=timeout(5))).type not in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    ):
        pass
    await eventually(
        lambda: client.app[FLEET].get("quiet").statistics().viewers == 0,
        message="the dead viewer is gone",
    )
