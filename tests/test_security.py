"""Security checks across modules, against the real gateway and real ttyd + tmux.

Origin, login, roles, links and limits have their own modules; this one
covers what crosses them: forwarded headers, frames a spectator could craft
with a raw WebSocket client, throttling over HTTP, and secrets in logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.appkeys import AUDIT, AUTH, FLEET
from gateway.auth import (
    FREE_FAILURES,
    LOGINS_IN_FLIGHT,
    MAX_NAME_CHARS,
    LoginThrottle,
    hash_password,
)
from gateway.config import Secret
from gateway.core import ttyd
from gateway.errors import BadRequest
from gateway.proxies import ProxyPolicy, parse_networks
from gateway.users import Role, User
from gateway.web import streams

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


def test_every_forwarded_for_line_counts_and_junk_ends_the_trust() -> None:
    # A proxy that appends a line of its own: the client's line comes first.
    assert PROXY.client("127.0.0.1", ["6.6.6.6", "203.0.113.7"]) == "203.0.113.7"
    assert PROXY.client("127.0.0.1", ["6.6.6.6, 203.0.113.7", "10.0.0.2"]) == "203.0.113.7"
    assert PROXY.client("127.0.0.1", ["not-an-ip"]) == "127.0.0.1"
    assert PROXY.client("127.0.0.1", "6.6.6.6, \xff, 10.0.0.2") == "10.0.0.2"
    assert PROXY.client("127.0.0.1", []) == "127.0.0.1"


async def test_a_second_forwarded_for_line_is_not_the_client_s_word(secured: Any) -> None:
    """Behind a proxy that adds its own header line, the client's line must not win."""
    client, _, audit_path = secured
    frozen_clock(client)
    for i in range(FREE_FAILURES + 2):
        answer = await client.post(
            "/api/login",
            json={"username": "op", "password": "wrong"},
            headers=[
                ("Origin", origin_of(client)),
                ("X-Forwarded-For", f"6.6.6.{i}"),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
        )
        assert answer.status == (401 if i < FREE_FAILURES else 429)
    addresses = {e.get("address") for e in await audit_entries(client, audit_path)}
    assert addresses == {"203.0.113.7"}


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
    # Past the login's body limit; then a password no user can have (not counted).
    oversized = await client.post(
        "/api/login", json={"username": "view", "password": "x" * 100_000}, headers=headers
    )
    assert oversized.status == 413
    too_long = await client.post(
        "/api/login", json={"username": "view", "password": "x" * 2000}, headers=headers
    )
    assert too_long.status == 400


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
    monkeypatch.setattr("gateway.web.terminal.HANDSHAKE_TIMEOUT", 0.3)
    monkeypatch.setattr("gateway.web.terminal.HEARTBEAT", 0.3)
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


# --- round 2: logins -------------------------------------------------------------


def post_login(
    client: TestClient[Any, Any], body: Any, address: str = "203.0.113.1", **kwargs: Any
) -> Any:
    """A login from ``address`` (the test client is a trusted proxy naming it)."""
    headers = {"Origin": origin_of(client), "X-Forwarded-For": address}
    if not isinstance(body, dict):
        return client.post("/api/login", data=body, headers=headers, **kwargs)
    return client.post("/api/login", json=body, headers=headers, **kwargs)


def frozen_clock(client: TestClient[Any, Any]) -> None:
    """A lock never runs out during the test, however slow the machine."""
    client.app[AUTH].throttle = LoginThrottle(clock=lambda: 1000.0)


async def audit_entries(client: TestClient[Any, Any], path: Path) -> list[dict[str, Any]]:
    await client.app[AUDIT].flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "body",
    [
        b'{"username": "\\ud800", "password": "x"}',
        b'{"username": "op\\udfff", "password": "x"}',
        b'{"username": "op", "password": "\\ud800"}',
        b'{"username": "\\udc00\\ud800", "password": "\\udbff"}',
    ],
)
async def test_a_name_or_password_that_is_not_text_is_400_and_the_audit_goes_on(
    secured: Any, body: bytes
) -> None:
    client, _, audit_path = secured
    response = await client.post(
        "/api/login",
        data=body,
        headers={"Origin": origin_of(client), "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"
    # The writer is alive: a later failure is written, and /healthz says so.
    assert (await post_login(client, {"username": "op", "password": "wrong"})).status == 401
    entries = await audit_entries(client, audit_path)
    assert entries[-1]["event"] == "login_failed"
    health = await (await client.get("/healthz")).json()
    assert health["audit"] == "ok"
    metrics = client.app[AUDIT].dropped_total
    assert metrics == 0


async def test_concurrent_guesses_meet_the_lock(secured: Any) -> None:
    """Bursts of 40 guesses at once: no more are checked than one by one would be."""
    client, _, _ = secured
    frozen_clock(client)
    checked = 0
    for burst in range(3):
        bodies = [{"username": "op", "password": f"wrong-{burst}-{i}"} for i in range(40)]
        answers = await asyncio.gather(*(post_login(client, body) for body in bodies))
        statuses = [answer.status for answer in answers]
        assert set(statuses) <= {401, 429}
        checked += statuses.count(401)
    assert checked <= FREE_FAILURES
    # And now the lock holds even for the right password, from this address.
    locked = await post_login(client, {"username": "op", "password": PASSWORD})
    assert locked.status == 429


async def test_the_lock_is_per_address_and_oversized_passwords_do_not_count(
    secured: Any,
) -> None:
    client, _, _ = secured
    frozen_clock(client)
    attacker, owner = "198.51.100.66", "192.0.2.10"
    # Oversized passwords, many times: refused before hashing, never counted.
    for _ in range(10):
        answer = await post_login(client, {"username": "op", "password": "x" * 1025}, attacker)
        assert answer.status == 400
    assert (
        await post_login(client, {"username": "op", "password": PASSWORD}, attacker)
    ).status == 200
    for _ in range(FREE_FAILURES):
        assert (
            await post_login(client, {"username": "op", "password": "no"}, attacker)
        ).status == 401
    assert (await post_login(client, {"username": "op", "password": "no"}, attacker)).status == 429
    # The account's owner, elsewhere, still gets in; so does another /64 of IPv6.
    assert (await post_login(client, {"username": "op", "password": PASSWORD}, owner)).status == 200
    v6 = "2001:db8:1:2::"
    for host in range(FREE_FAILURES):
        answer = await post_login(client, {"username": "op", "password": "no"}, f"{v6}{host + 1}")
        assert answer.status == 401
    # One /64 is one client: its next address is locked out too.
    assert (await post_login(client, {"username": "op", "password": "no"}, f"{v6}ff")).status == 429
    other_v6 = "2001:db8:1:3::1"
    assert (
        await post_login(client, {"username": "op", "password": PASSWORD}, other_v6)
    ).status == 200


async def test_refusals_under_a_lock_are_audited_once(secured: Any) -> None:
    client, _, audit_path = secured
    frozen_clock(client)
    for _ in range(FREE_FAILURES):
        await post_login(client, {"username": "op", "password": "no"})
    answers = [await post_login(client, {"username": "op", "password": "no"}) for _ in range(50)]
    assert {answer.status for answer in answers} == {429}
    events = [e["event"] for e in await audit_entries(client, audit_path)]
    assert events.count("login_failed") == FREE_FAILURES
    assert events.count("login_throttled") == 1


async def test_no_login_grows_memory_for_good(secured: Any) -> None:
    client, _, _ = secured
    auth = client.app[AUTH]
    # A megabyte of name is refused by the body limit, with or without a length.
    huge = {"username": "n" * 1_000_000, "password": "x"}
    assert (await post_login(client, huge)).status == 413

    async def chunked() -> Any:
        yield b'{"username": "'
        for _ in range(100):
            yield b"n" * 10_000
        yield b'", "password": "x"}'

    assert (await post_login(client, chunked())).status == 413
    # Long names that fit are cut before the throttle keeps them.
    for i in range(20):
        name = f"{i}-" + "n" * 3000
        assert (await post_login(client, {"username": name, "password": "x"})).status == 401
    counted = auth.throttle.counted()
    assert max(len(name) for name, _ in counted) <= MAX_NAME_CHARS


async def test_unknown_names_are_audited_as_a_digest(secured: Any) -> None:
    client, _, audit_path = secured
    typed = "my-password-typed-in-the-wrong-field"
    for _ in range(2):
        await post_login(client, {"username": typed, "password": "x"})
    await post_login(client, {"username": "op", "password": "wrong"})
    entries = [e for e in await audit_entries(client, audit_path) if e["event"] == "login_failed"]
    assert typed not in audit_path.read_text()
    assert entries[0]["user"] == entries[1]["user"]  # still recognisably the same name
    assert entries[0]["user"].startswith("unknown:")
    assert entries[2]["user"] == "op"


async def test_a_saturated_default_executor_stalls_no_login_link_or_audit(secured: Any) -> None:
    """What a login flood did to everything else: it all shared one thread pool."""
    client, _, _ = secured
    loop = asyncio.get_running_loop()
    release = threading.Event()
    # Every thread of the loop's default executor is taken.
    blockers = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    op = None
    try:
        async with asyncio.timeout(timeout(10)):
            op = await login(client, "op")
            link = await op.post("/api/agents/target/shares", json={"ttl_seconds": 600})
            assert link.status == 201
            url = (await link.json())["url"]
            guest = await browser(client)
            used = await guest.get("/" + url.split("/", 3)[3], allow_redirects=False)
            await guest.close()
            assert used.status == 303
            admin = await login(client, "op")
            assert (await admin.get("/api/shares")).status == 200
            await admin.close()
    finally:
        release.set()
        await asyncio.gather(*blockers)
        if op is not None:
            await op.close()


async def test_a_few_flooding_addresses_do_not_keep_the_owner_out(secured: Any) -> None:
    """Five addresses, two attempts each at all times, a fresh name each (no lock)."""
    client, _, _ = secured
    done = asyncio.Event()
    sent = 0

    async def flood(address: str) -> None:
        nonlocal sent
        while not done.is_set() and sent < 2000:
            sent += 1
            await post_login(client, {"username": f"x{sent}", "password": "x"}, address)

    attackers = [
        asyncio.create_task(flood(f"198.51.100.{n}")) for n in range(1, 6) for _ in range(2)
    ]
    try:
        await eventually(lambda: client.app[AUTH].gate.waiting > 0, message="a full gate")
        owner = await post_login(client, {"username": "op", "password": PASSWORD}, "192.0.2.1")
        assert owner.status == 200
    finally:
        done.set()
        await asyncio.gather(*attackers)


async def test_a_login_flood_is_bounded(secured: Any) -> None:
    client, _, _ = secured
    auth = client.app[AUTH]
    seen_in_flight = []

    async def watch() -> None:
        while True:
            seen_in_flight.append(auth.gate.in_flight)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    flood = [
        post_login(
            client, {"username": "op", "password": f"guess-{i}"}, f"198.18.{i // 250}.{i % 250}"
        )
        for i in range(150)
    ]
    statuses = [answer.status for answer in await asyncio.gather(*flood)]
    watcher.cancel()
    assert set(statuses) <= {401, 503}
    assert statuses.count(503) > 0
    assert max(seen_in_flight) <= LOGINS_IN_FLIGHT
    # One client may not take all the places either.
    same = [
        post_login(client, {"username": "op", "password": f"g{i}"}, "198.51.100.9")
        for i in range(6)
    ]
    assert 429 in [answer.status for answer in await asyncio.gather(*same)]
    # When the flood is over, the owner logs in.
    assert (
        await post_login(client, {"username": "op", "password": PASSWORD}, "192.0.2.1")
    ).status == 200


# --- round 2: what used to be a 500, links, headers -------------------------------


async def test_bodies_that_used_to_be_500s_are_400s(secured: Any) -> None:
    client, agent, _ = secured
    deep_login = b'{"username": ' + b"[" * 4000 + b"]" * 4000 + b', "password": "x"}'
    assert (await post_login(client, deep_login)).status == 400
    view, op = await login(client, "view"), await login(client, "op")
    try:
        deep = b"[" * 50_000 + b"]" * 50_000
        for http in (view, op):
            for path in ("/api/agents/target/input", "/api/input"):
                answer = await http.post(path, data=deep)
                assert answer.status == 400, path
            for data in ('"\\ud800"', '"echo \\udfff\\r"', '"a\\ud83d"'):
                body = f'{{"data": {data}, "agents": ["target"]}}'.encode()
                for path in ("/api/agents/target/input", "/api/input"):
                    answer = await http.post(path, data=body)
                    assert answer.status == 400, (path, data)
                    assert (await answer.json())["error"] == "bad_request"
        assert "\ud800" not in await agent.capture()
    finally:
        await view.close()
        await op.close()


def test_a_tail_of_unicode_digits_is_refused() -> None:
    for value in ("²", "٣", "1²", "-1", "+1", " 1", "1e3"):
        with pytest.raises(BadRequest):
            streams._tail(value, ring_size=100)
    assert streams._tail("7", ring_size=100) == 7


async def test_only_get_redeems_a_link_and_odd_paths_do_not_log_its_token(
    secured: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client, _, _ = secured
    op = await login(client, "op")
    made = await op.post("/api/agents/target/shares", json={"ttl_seconds": 600, "max_uses": 1})
    token = (await made.json())["url"].rsplit("/", 1)[1]
    await op.close()
    guest = await browser(client)
    try:
        # A link preview's HEAD does not use it up.
        for _ in range(3):
            assert (await guest.head(f"/s/{token}", allow_redirects=False)).status == 405
        for odd in (f"////s/{token}", f"/s//{token}", f"/s%2F{token}", f"/S/{token}"):
            await guest.get(odd, allow_redirects=False)
        used = await guest.get(f"/s/{token}", allow_redirects=False)
        assert used.status == 303
        assert used.headers["Cache-Control"] == "no-store"
        assert (await guest.get(f"/s/{token}", allow_redirects=False)).status == 404
    finally:
        await guest.close()
    assert token not in caplog.text


async def test_https_deployments_get_hsts_and_redirects_are_not_cached(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    agent = await make_agent("target")
    client = await gateway(
        agent, public_origin="https://gw.example", demo_login_token=Secret("once-only-token")
    )
    host = {"Host": "gw.example"}
    for path in ("/", "/api/agents", "/healthz", "/static/dist/login.js"):
        answer = await client.get(path, headers=host, allow_redirects=False)
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000", path
    once = await client.get("/login/once-only-token", headers=host, allow_redirects=False)
    assert once.status == 303
    assert once.headers["Cache-Control"] == "no-store"
    plain = await gateway(agent)
    assert "Strict-Transport-Security" not in (await plain.get("/")).headers
