"""Login, sessions and roles at the gateway, in front of real ttyd + tmux."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway import config
from gateway.app import reload_users
from gateway.appkeys import EVENTS
from gateway.auth import hash_password, new_api_token
from gateway.core import ttyd
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import (
    AgentFactory,
    EventReader,
    GatewayFactory,
    Terminal,
    browser,
    eventually,
    origin_of,
)

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def users() -> tuple[User, ...]:
    hashed = hash_password(PASSWORD)
    return (
        User("olga", hashed, Role.OPERATOR, ("*",)),
        User("vic", hashed, Role.VIEWER, ("watched",)),
        User("ada", hashed, Role.ADMIN, ("*",)),
    )


@pytest.fixture
async def agents(make_agent: AgentFactory) -> tuple[LocalAgent, LocalAgent]:
    return await make_agent("watched"), await make_agent("hidden")


@pytest.fixture
async def client(
    gateway: GatewayFactory, agents: tuple[LocalAgent, LocalAgent], users: tuple[User, ...]
) -> TestClient[Any, Any]:
    return await gateway(*agents, users=users)


@pytest.fixture
async def sessions(client: TestClient[Any, Any]) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """One browser (cookie jar) per user, logged in."""
    opened: dict[str, aiohttp.ClientSession] = {}
    for name in ("olga", "vic", "ada"):
        opened[name] = await browser(client, name, PASSWORD)
    yield opened
    for http in opened.values():
        await http.close()


async def terminal(http: aiohttp.ClientSession, agent_id: str) -> Terminal:
    ws = await http.ws_connect(f"/agents/{agent_id}/ws", protocols=("tty",))
    await ws.send_bytes(ttyd.Handshake("", 80, 24).serialize())
    return Terminal(ws, 80, 24)


async def test_everything_but_login_needs_a_session(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/login")).status == 200
    api = await client.get("/api/agents")
    assert api.status == 401
    assert (await api.json())["error"] == "unauthorized"
    page = await client.get("/agents/watched/", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/login?next=/agents/watched/"
    ws = await client.get("/agents/watched/ws", headers={"Origin": origin_of(client)})
    assert ws.status == 401


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: TestClient[Any, Any],
) -> None:
    headers = {"Origin": origin_of(client)}
    wrong = await client.post(
        "/api/login", json={"username": "olga", "password": "nope"}, headers=headers
    )
    unknown = await client.post(
        "/api/login", json={"username": "nobody", "password": "nope"}, headers=headers
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    bad = await client.post("/api/login", data=b"not json", headers=headers)
    assert bad.status == 400
    csrf = await client.post(
        "/api/login",
        json={"username": "olga", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert csrf.status == 403


async def test_session_cookie_attributes(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/login",
        json={"username": "olga", "password": PASSWORD},
        headers={"Origin": origin_of(client)},
    )
    assert await response.json() == {"user": "olga", "role": "operator"}
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("gateway_session=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http public origin


async def test_roles_and_globs(
    client: TestClient[Any, Any],
    sessions: dict[str, aiohttp.ClientSession],
    agents: tuple[LocalAgent, LocalAgent],
) -> None:
    olga, vic = sessions["olga"], sessions["vic"]
    seen = await (await vic.get("/api/agents")).json()
    assert [a["id"] for a in seen["agents"]] == ["watched"]
    for path in ("/api/agents/hidden/screen", "/agents/hidden/", "/agents/hidden/token"):
        response = await vic.get(path, headers={"Accept": "application/json"})
        assert response.status == 404, path
        assert (await response.json())["error"] == "not_found"
    # A page the viewer may not see is the page of one that does not exist.
    hidden = await (await vic.get("/agents/hidden/")).text()
    missing = await (await vic.get("/agents/hiddex/")).text()
    assert hidden == missing.replace("hiddex", "hidden")
    assert len((await (await olga.get("/api/agents")).json())["agents"]) == 2

    watched = agents[0]
    operator = await terminal(olga, "watched")
    viewer = await terminal(vic, "watched")
    await operator.wait_text("$")
    await viewer.wait_text("$")
    await viewer.ws.send_bytes(b"0echo from-the-viewer\r")
    await viewer.ws.send_str("0echo text-frame\r")
    await viewer.ws.send_bytes(b'1{"columns": 50, "rows": 10}')
    await viewer.ws.send_bytes(b"2")
    await operator.send_input(b"echo from-the-operator-$((1+1))\r")
    await viewer.wait_text("from-the-operator-2")
    await eventually(lambda: bool(viewer.notices), message="read-only notice")
    assert viewer.notices[0].code == "read_only"
    pane = await watched.capture()
    assert "from-the-viewer" not in pane
    assert "text-frame" not in pane
    assert await watched.pane_size() == (80, 24)
    await operator.close()
    await viewer.close()


async def test_logout_closes_live_sockets_with_1008(
    client: TestClient[Any, Any], sessions: dict[str, aiohttp.ClientSession]
) -> None:
    olga = sessions["olga"]
    term = await terminal(olga, "watched")
    await term.wait_text("$")
    assert (await olga.post("/api/logout")).status == 204
    assert await term.wait_closed() == 1008
    assert (await olga.get("/api/agents")).status == 401


async def test_a_new_login_replaces_the_old_session(
    client: TestClient[Any, Any], sessions: dict[str, aiohttp.ClientSession]
) -> None:
    vic = sessions["vic"]
    before = {c.key: c.value for c in vic.cookie_jar}
    term = await terminal(vic, "watched")
    await term.wait_text("$")
    again = await vic.post("/api/login", json={"username": "vic", "password": PASSWORD})
    assert again.status == 200
    after = {c.key: c.value for c in vic.cookie_jar}
    assert after["gateway_session"] != before["gateway_session"]
    # The session the socket was opened with is over, and so is the socket.
    assert await term.wait_closed() == 1008
    await asyncio.sleep(0)
    assert (await vic.get("/api/agents")).status == 200


async def test_audit_trail(
    client: TestClient[Any, Any], sessions: dict[str, aiohttp.ClientSession]
) -> None:
    olga, vic, ada = sessions["olga"], sessions["vic"], sessions["ada"]
    await olga.post("/api/login", json={"username": "olga", "password": "not it"})
    operator, viewer = await terminal(olga, "watched"), await terminal(vic, "watched")
    await operator.wait_text("$")
    await operator.send_input(b"echo audited\r")
    await operator.wait_text("audited\n")
    for _ in range(3):
        await viewer.ws.send_bytes(b"0rm -rf /\r")
    await eventually(lambda: bool(viewer.notices), message="read-only notice")
    await operator.close()
    await viewer.close()
    assert (await vic.get("/api/audit")).status == 403
    assert (await olga.get("/api/audit")).status == 403

    async def entries() -> list[dict[str, Any]]:
        body = await (await ada.get("/api/audit", params={"limit": "1000"})).json()
        result: list[dict[str, Any]] = body["entries"]
        return result

    await eventually(
        lambda: _has_event(entries(), "viewer_left", "vic"), message="viewer_left recorded"
    )
    log = await entries()
    events = [(e["event"], e.get("user")) for e in log]
    assert ("login", "olga") in events
    assert ("login_failed", "olga") in events
    assert ("viewer_joined", "vic") in events
    (typed,) = [e for e in log if e["event"] == "input"]
    assert typed["user"] == "olga"
    assert typed["agent"] == "watched"
    assert typed["text"] == "echo audited\r"
    refused = [e for e in log if e["event"] == "write_refused"]
    assert len(refused) == 1  # once per connection, however many tries
    assert refused[0]["user"] == "vic"
    left = next(e for e in log if e["event"] == "viewer_left" and e["user"] == "vic")
    assert left["refused_writes"] == 3
    raw = json.dumps(log)
    assert PASSWORD not in raw
    assert "not it" not in raw
    page = await (await ada.get("/api/audit", params={"offset": "1", "limit": "2"})).json()
    assert page["entries"] == log[1:3]
    assert page["total"] >= len(log)  # entries may have been added since
    bad = await ada.get("/api/audit", params={"limit": "0"})
    assert bad.status == 400


async def _has_event(entries: Any, event: str, user: str) -> bool:
    return any(e["event"] == event and e.get("user") == user for e in await entries)


async def test_config_reload_removes_and_downgrades_users(
    make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path
) -> None:
    agent = await make_agent("watched")
    hashed = hash_password(PASSWORD)

    def config_text(*users: tuple[str, str]) -> str:
        return "".join(
            f"[[users]]\nname = '{name}'\npassword_hash = '{hashed}'\nrole = '{role}'\n"
            for name, role in users
        )

    path = tmp_path / "gateway.toml"
    path.write_text(config_text(("olga", "operator"), ("vic", "viewer")))
    loaded = config.load(path)
    client = await gateway(agent, users=loaded.users, config_path=loaded.config_path)
    browsers = {}
    for name in ("olga", "vic"):
        browsers[name] = await browser(client, name, PASSWORD)
    try:
        olga, vic = (
            await terminal(browsers["olga"], "watched"),
            await terminal(browsers["vic"], "watched"),
        )
        await olga.wait_text("$")
        await vic.wait_text("$")
        path.write_text("[[users]\n")  # broken: nothing changes
        await reload_users(client.app)
        await olga.send_input(b"echo still-operator\r")
        await olga.wait_text("still-operator\n")
        path.write_text(config_text(("olga", "viewer")))
        await reload_users(client.app)
        assert await vic.wait_closed() == 1008
        await olga.send_input(b"echo now-a-viewer\r")
        await eventually(lambda: bool(olga.notices), message="read-only notice")
        assert olga.notices[0].code == "read_only"
        assert "now-a-viewer" not in await agent.capture()
        assert (await browsers["vic"].get("/api/agents")).status == 401
        await olga.close()
    finally:
        for http in browsers.values():
            await http.close()


@pytest.mark.parametrize(
    ("sweep", "idle"),
    [
        (None, 1),
        # The sweeper rechecks every open socket many times over: that is no
        # activity of the user's, and must not keep the session alive.
        (0.1, 2),
    ],
)
async def test_an_idle_session_times_out_and_its_socket_closes(
    make_agent: AgentFactory,
    gateway: GatewayFactory,
    users: tuple[User, ...],
    monkeypatch: pytest.MonkeyPatch,
    sweep: float | None,
    idle: int,
) -> None:
    if sweep is not None:
        monkeypatch.setattr("gateway.web.identity.SWEEP_INTERVAL", sweep)
    agent = await make_agent("watched")
    client = await gateway(agent, users=users, session_idle_seconds=idle, session_max_seconds=60)
    http = await browser(client, "vic", PASSWORD)
    try:
        term = await terminal(http, "watched")
        await term.wait_text("$")
        # Watching sends nothing: once idle long enough, the sweeper ends it.
        assert await term.wait_closed(within=10) == 1008
        assert (await http.get("/api/agents")).status == 401
    finally:
        await http.close()


async def test_me_tells_the_pages_what_to_offer(agent: LocalAgent, gateway: GatewayFactory) -> None:
    open_mode = await gateway(agent)
    assert await (await open_mode.get("/api/me")).json() == {
        "name": "anonymous",
        "role": "operator",
        "can_write": True,
        "can_share": False,  # nobody to answer for a link without logins
        "spectator_of": None,
        "login": False,
        "scrollback": 10000,  # server.scrollback: the page's xterm.js keeps as many lines
    }
    hashed = hash_password("pw")
    client = await gateway(
        agent,
        users=(User("olga", hashed, Role.OPERATOR), User("vic", hashed, Role.VIEWER)),
    )
    assert (await client.get("/api/me")).status == 401
    olga, vic, guest = (
        await browser(client, "olga", "pw"),
        await browser(client, "vic", "pw"),
        await browser(client),
    )
    try:
        me = await (await olga.get("/api/me")).json()
        assert (me["can_write"], me["can_share"], me["login"]) == (True, True, True)
        me = await (await vic.get("/api/me")).json()
        assert (me["role"], me["can_write"], me["can_share"]) == ("viewer", False, False)
        link = await (
            await olga.post(f"/api/agents/{agent.name}/shares", json={"ttl_seconds": 600})
        ).json()
        await guest.get("/s/" + link["url"].rsplit("/", 1)[1])
        me = await (await guest.get("/api/me")).json()
        assert (me["spectator_of"], me["can_write"], me["can_share"]) == (agent.name, False, False)
    finally:
        for http in (olga, vic, guest):
            await http.close()


async def test_a_reload_closes_every_socket_and_stream_that_lost_access(
    make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Bearer sockets, narrowed globs, the event feed and links of a narrowed creator.

    None of these callers sends a byte after the reload: the gateway must
    notice by itself.
    """
    watched, hidden = await make_agent("watched"), await make_agent("hidden")
    hashed = hash_password(PASSWORD)
    token, digest = new_api_token()

    def config_text(olga_token: bool, narrowed: bool) -> str:
        globs = "['watched']" if narrowed else "['*']"
        token_line = f"api_token_sha256 = '{digest}'\n" if olga_token else ""
        return (
            f"[[users]]\nname = 'olga'\npassword_hash = '{hashed}'\nrole = 'operator'\n"
            + token_line
            + f"[[users]]\nname = 'vic'\npassword_hash = '{hashed}'\nrole = 'viewer'\n"
            + f"agents = {globs}\n"
            + f"[[users]]\nname = 'otto'\npassword_hash = '{hashed}'\nrole = 'operator'\n"
            + f"agents = {globs}\n"
        )

    path = tmp_path / "gateway.toml"
    path.write_text(config_text(olga_token=True, narrowed=False))
    loaded = config.load(path)
    client = await gateway(watched, hidden, users=loaded.users, config_path=loaded.config_path)
    vic_http, otto_http = (
        await browser(client, "vic", PASSWORD),
        await browser(client, "otto", PASSWORD),
    )
    guest = await browser(client)
    script = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
    try:
        # A script's bearer socket (no cookie, no Origin), vic on the hidden
        # agent and on the event feed, a spectator through otto's link.
        ws = await script.ws_connect(client.make_url("/agents/watched/ws"), protocols=("tty",))
        await ws.send_bytes(ttyd.Handshake().serialize())
        by_token = Terminal(ws, 80, 24)
        vic_term = await terminal(vic_http, "hidden")
        feed = await vic_http.get("/api/events")
        reader = EventReader(feed)
        assert {a["id"] for a in (await reader.next())["data"]["agents"]} == {"watched", "hidden"}
        link = await otto_http.post("/api/agents/hidden/shares", json={"ttl_seconds": 600})
        url = "/" + (await link.json())["url"].split("/", 3)[3]
        unused = await otto_http.post("/api/agents/hidden/shares", json={"ttl_seconds": 600})
        unused_url = "/" + (await unused.json())["url"].split("/", 3)[3]
        assert (await guest.get(url, allow_redirects=False)).status == 303
        spectator = await terminal(guest, "hidden")
        for term in (by_token, vic_term, spectator):
            await term.wait_text("$")
        # Everything sent so far is read: vic and the spectator on the hidden agent.
        await reader.until(
            lambda e: (
                e["event"] == "agent"
                and e["data"]["agent"]["id"] == "hidden"
                and e["data"]["agent"]["viewers"] == 2
            )
        )

        path.write_text(config_text(olga_token=False, narrowed=True))
        # Events sent before the reload may still be on their way: skip those.
        reloaded_at = client.app[EVENTS].ring.next_seq
        await reload_users(client.app)
        assert await by_token.wait_closed(within=5) == 1008
        assert await vic_term.wait_closed(within=5) == 1008
        assert await spectator.wait_closed(within=5) == 1008
        # The other link of otto's no longer opens; the removed token opens nothing.
        assert (await guest.get(unused_url, allow_redirects=False)).status == 404
        refused = await script.get(client.make_url("/api/agents"))
        assert refused.status == 401
        # vic still sees the watched agent, and hears nothing more of the hidden one.
        await hidden.tmux("send-keys", "-t", "hidden", "echo hidden-output", "Enter")
        await watched.tmux("send-keys", "-t", "watched", "echo watched-output", "Enter")
        heard = await reader.until(
            lambda e: e["event"] == "activity" and e["data"]["id"] == "watched", within=10
        )
        after = [e for e in heard if int(e["id"].rsplit("-", 1)[1]) >= reloaded_at]
        assert after
        assert not [e for e in after if "hidden" in json.dumps(e["data"])]
    finally:
        for http in (vic_http, otto_http, guest, script):
            await http.close()


async def test_the_login_page_learns_how_one_logs_in(
    agent: LocalAgent, gateway: GatewayFactory, users: tuple[User, ...]
) -> None:
    configured = await gateway(agent, users=users)
    answer = await configured.get("/api/login")
    assert answer.status == 200
    assert await answer.json() == {"demo": False, "password": True, "hint": None}
    demo = await gateway(agent, demo=True, demo_login_token=config.Secret("tok"))
    body = await (await demo.get("/api/login")).json()
    # The demo's admin has a random password nobody knows: links only.
    assert body["demo"] is True
    assert body["password"] is False
    assert "press Enter" in body["hint"]


async def test_a_used_login_link_is_a_page_for_people_and_json_for_programs(
    agent: LocalAgent, gateway: GatewayFactory, users: tuple[User, ...]
) -> None:
    client = await gateway(agent, users=users)
    page = await client.get("/login/never-made", headers={"Accept": "text/html"})
    assert page.status == 404
    assert page.content_type == "text/html"
    assert "<h1>This login link does not work</h1>" in await page.text()
    assert '<a href="/login">Log in</a>' in await page.text()
    assert "never-made" not in await page.text()
    asked = await client.get("/login/never-made", headers={"Accept": "application/json"})
    assert (await asked.json())["error"] == "link_invalid"
