"""The HTTP and WebSocket surface, end to end through real ttyd + tmux."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from gateway.appkeys import FLEET
from gateway.auth import hash_password
from gateway.core import ttyd
from gateway.limits import DEFAULT_VIEWER_QUEUE_BYTES
from gateway.local import LocalAgent
from gateway.readiness import Phase, Readiness
from gateway.users import Role, User
from gateway.web.terminal import VIEWER_SEND_BUFFER

from .conftest import (
    AgentFactory,
    GatewayFactory,
    Terminal,
    browser,
    equals,
    eventually,
    open_terminal,
    timeout,
    ws_connect,
)


async def api_screen(client: TestClient[Any, Any], agent_id: str, fmt: str = "text") -> str:
    response = await client.get(f"/api/agents/{agent_id}/screen", params={"format": fmt})
    assert response.status == 200
    return await response.text()


async def matches_tmux(agent: LocalAgent, terminal: Terminal) -> bool:
    return await agent.capture() == terminal.screen.text()


async def test_three_viewers_one_upstream_and_a_late_joiner(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    viewers = [await open_terminal(client, agent.name) for _ in range(3)]
    for viewer in viewers:
        await viewer.wait_text("$")
    await viewers[1].send_input(b"echo from-$((6*7))-viewer\r")
    for viewer in viewers:
        await viewer.wait_text("from-42-viewer")
    await agent.tmux("send-keys", "-t", agent.name, "printf '\\033[1;31mred\\033[0m\\n'", "Enter")
    for viewer in viewers:
        await viewer.wait_text("red\n")

    late = await open_terminal(client, agent.name)
    await late.wait_text("from-42-viewer")
    await eventually(lambda: matches_tmux(agent, late), message="late joiner equals tmux")
    # Its first output frame alone paints the whole screen.
    assert late.first_output is not None
    assert late.first_output.startswith(b"\x1bc")
    assert await agent.client_count() == 1
    response = await client.get("/api/agents")
    (listed,) = (await response.json())["agents"]
    assert listed["viewers"] == 4
    assert listed["status"] == "connected"
    for viewer in [*viewers, late]:
        await viewer.close()


async def test_screen_api_formats(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    await agent.tmux("send-keys", "-t", agent.name, "printf '\\033[1mbold\\033[0m\\n'", "Enter")
    await eventually(lambda: _has(client, agent.name, "bold\n"), message="bold in screen")
    text = await api_screen(client, agent.name, "text")
    assert text == await agent.capture()
    ansi = await api_screen(client, agent.name, "ansi")
    assert "\x1b[" in ansi
    assert "bold" in ansi
    data = json.loads(await api_screen(client, agent.name, "json"))
    assert data["id"] == agent.name
    assert (data["columns"], data["rows"]) == (80, 24)
    assert any("bold" in line for line in data["lines"])
    bad = await client.get(f"/api/agents/{agent.name}/screen", params={"format": "png"})
    assert bad.status == 400
    assert (await bad.json())["error"] == "bad_request"


async def test_screen_json_with_ansi_is_what_a_tile_draws(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    await agent.tmux(
        "send-keys", "-t", agent.name, r"printf '\033]2;tile\007\033[31mred\033[0m\n'", "Enter"
    )
    await eventually(lambda: _has(client, agent.name, "red\n$"), message="red in screen")
    response = await client.get(
        f"/api/agents/{agent.name}/screen", params={"format": "json", "ansi": "1"}
    )
    tile = await response.json()
    # Picture, size, cursor and title of one moment.
    assert tile["ansi"] == await api_screen(client, agent.name, "ansi")
    assert "mred\x1b[" in tile["ansi"]  # in colour
    assert tile["title"] == "tile"
    assert (tile["columns"], tile["rows"]) == (80, 24)
    assert tile["lines"][tile["cursor"]["y"]] == "$"
    assert "ansi" not in json.loads(await api_screen(client, agent.name, "json"))
    for bad in ({"format": "json", "ansi": "yes"}, {"format": "text", "ansi": "1"}):
        response = await client.get(f"/api/agents/{agent.name}/screen", params=bad)
        assert response.status == 400, bad


async def _has(client: TestClient[Any, Any], agent_id: str, needle: str) -> bool:
    return needle in await api_screen(client, agent_id)


async def test_unknown_agent_is_404_json(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    # The API and the machine routes always; the pages when JSON is asked for.
    for path, accept in (
        ("/api/agents/nope/screen", "text/html"),
        ("/agents/nope/", "application/json"),
        ("/agents/nope/token", "text/html"),
        ("/agents/nope/ws", "*/*"),
        ("/agents/..%2Fetc/ws", "*/*"),
        ("/no/such/route", "application/json"),
        ("/static/dist/nope.js", "text/html"),
    ):
        response = await client.get(path, headers={"Accept": accept})
        assert response.status == 404, path
        body = await response.json()
        assert body["error"] == "not_found", path
    await eventually(lambda: equals(agent.client_count(), 1), message="one upstream, no more")


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_a_browser_gets_an_html_page_for_what_is_not_there(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    for path, heading, reason in (
        ("/agents/nope/", "No such agent", "There is no agent &#x27;nope&#x27; here"),
        ("/agents/nope", "No such agent", "There is no agent &#x27;nope&#x27; here"),
        ("/no/such/route", "Not Found", "There is nothing at this address."),
    ):
        for accept in (BROWSER_ACCEPT, "*/*", ""):
            response = await client.get(path, headers={"Accept": accept})
            assert response.status == 404, path
            assert response.content_type == "text/html", (path, accept)
            page = await response.text()
            assert f"<h1>{heading}</h1>" in page, path
            assert reason in page, path
            assert '<a href="/">All agents</a>' in page
            # Every page's headers, and the CSP holds: no inline script at all.
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Cache-Control"] == "no-store"
            assert "<script" not in page


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/agents/%3Cscript%3Ealert(1)%3C%2Fscript%3E/", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("/agents/%22%3E%3Cimg%20src=x%3E/", "&quot;&gt;&lt;img src=x&gt;"),
        ("/agents/a%26b%27c/", "a&amp;b&#x27;c"),
        # Format and control characters are written as escapes, not rendered.
        ("/agents/%E2%80%AEexe.txt/", "\\u202eexe.txt"),
        ("/agents/%E2%80%8Bzero/", "\\u200bzero"),
        ("/agents/tab%09cr%0D/", "tab\\tcr\\r"),
        # Printable non-ASCII stays itself.
        ("/agents/%C3%A9t%C3%A9-%F0%9F%A4%96/", "été-🤖"),
    ],
)
async def test_an_error_page_escapes_what_the_url_holds(
    agent: LocalAgent, gateway: GatewayFactory, path: str, shown: str
) -> None:
    client = await gateway(agent)
    response = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert response.status == 404
    page = await response.text()
    assert shown in page
    assert "<script>" not in page
    assert "<img" not in page
    assert "\u202e" not in page
    assert "\u200b" not in page


async def test_an_error_page_repeats_only_a_short_part_of_a_long_id(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    response = await client.get("/agents/" + "x" * 3000 + "/", headers={"Accept": BROWSER_ACCEPT})
    page = await response.text()
    assert "x" * 80 + "…" in page
    assert "x" * 81 not in page


async def test_token_page_and_health(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    health = {"status": "ok", "docker": "disabled", "audit": "ok", "redis": "disabled"}
    assert await (await client.get("/healthz")).json() == health
    assert await (await client.get(f"/agents/{agent.name}/token")).json() == {"token": ""}
    page = await client.get(f"/agents/{agent.name}/")
    assert page.status == 200
    html = await page.text()
    assert "/static/dist/terminal.js" in html
    bundle = await client.get("/static/dist/terminal.js")
    assert bundle.status == 200, "run `make setup` to build the front end"
    redirect = await client.get(f"/agents/{agent.name}", allow_redirects=False)
    assert redirect.status == 308
    assert redirect.headers["Location"] == f"/agents/{agent.name}/"
    # The npm tree and sources are not served, only the bundle.
    assert (await client.get("/static/dist/../package.json")).status == 404
    assert (await client.get("/static/node_modules/@xterm/xterm/package.json")).status == 404


async def test_ready_once_started_and_not_while_draining(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    users = (User("admin", hash_password("pw"), Role.ADMIN),)
    client = await gateway(agent, users=users)
    # Public, like /healthz: a load balancer has no session.
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})
    await client.app.shutdown()  # what SIGTERM starts: /readyz turns first
    draining = await client.get("/readyz")
    assert (draining.status, await draining.json()) == (503, {"status": "draining"})
    assert (await client.get("/healthz")).status == 200  # still working, just leaving


def test_readiness_goes_one_way() -> None:
    readiness = Readiness()
    assert (readiness.phase, readiness.ready) == (Phase.STARTING, False)
    readiness.started()
    assert readiness.ready
    readiness.draining()
    readiness.started()  # a late start never makes a draining gateway ready again
    assert (readiness.phase, readiness.ready) == (Phase.DRAINING, False)


async def test_ttyd_restart_is_survived_and_viewers_told(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    agent = await make_agent()
    client = await gateway(agent)
    viewer = await open_terminal(client, agent.name)
    await viewer.wait_text("$")
    await agent.stop_ttyd()
    await eventually(
        lambda: any(s.state == "reconnecting" for s in viewer.statuses), message="reconnecting"
    )
    await viewer.send_input(b"echo lost\r")
    await eventually(lambda: bool(viewer.notices), message="input refused notice")
    assert viewer.notices[0].code == "input_refused"
    await agent.start_ttyd()
    await eventually(
        lambda: viewer.statuses[-1].state == "connected", within=20, message="connected again"
    )
    await viewer.send_input(b"echo back-$((2+3))\r")
    await viewer.wait_text("back-5")
    assert "lost" not in await agent.capture()
    await eventually(lambda: matches_tmux(agent, viewer), message="screen equals tmux")
    await viewer.close()


async def test_the_last_error_goes_once_the_agent_is_connected_again(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)

    async def shown() -> dict[str, Any]:
        response = await client.get("/api/agents")
        agents: list[dict[str, Any]] = (await response.json())["agents"]
        return agents[0]

    async def status_is(state: str) -> bool:
        return bool((await shown())["status"] == state)

    await eventually(lambda: status_is("connected"), message="connected")
    await agent.stop_ttyd()
    await eventually(lambda: status_is("reconnecting"), message="reconnecting")
    assert (await shown())["upstream"]["last_error"]
    await agent.start_ttyd()
    await eventually(lambda: status_is("connected"), within=20, message="connected again")
    # Before, the error of the drop stayed beside "connected" for good.
    upstream = (await shown())["upstream"]
    assert (upstream["connects"], upstream["last_error"]) == (2, "")


async def test_operator_resize_reaches_tmux(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    viewer = await open_terminal(client, agent.name, 100, 30)
    await viewer.wait_text("$")

    await eventually(lambda: equals(agent.pane_size(), (100, 30)), message="handshake size")
    await viewer.ws.send_bytes(b'1{"columns": 100000, "rows": -4}')
    clamped = (ttyd.MAX_COLUMNS, ttyd.MIN_ROWS)
    await eventually(lambda: equals(agent.pane_size(), clamped), message="clamped size")
    await viewer.close()


async def test_the_others_are_told_who_resized_once_however_many_resizes(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    olga = User("olga", hash_password("pw"), Role.OPERATOR)
    vic = User("vic", hash_password("pw"), Role.VIEWER)
    client = await gateway(agent, users=(olga, vic))
    sessions = [await browser(client, name, "pw") for name in ("olga", "vic")]
    operator, watcher = [await _terminal_of(http, agent.name) for http in sessions]
    await operator.wait_text("$")
    await watcher.wait_text("$")
    before = await agent.pane_size()
    # A drag: hundreds of resizes as fast as the socket takes them.
    for step in range(400):
        await operator.ws.send_bytes(ttyd.Resize(40 + step % 50, 20).serialize())
    # The last one claims to be someone else's: the gateway names the caller.
    await operator.ws.send_bytes(b'1{"columns":46,"rows":40,"by":"mallory","viewer":"x"}')
    await eventually(lambda: equals(agent.pane_size(), (46, 40)), message="the last size")
    await eventually(lambda: bool(watcher.notices), message="a resize notice")
    await asyncio.sleep(timeout(1))
    (notice,) = [n for n in watcher.notices if n.code == "resized"]
    assert notice.details == {
        "by": "olga",
        "columns": 46,
        "rows": 40,
        "previous": {"columns": before[0], "rows": before[1]},
    }
    assert "olga" in notice.message
    assert not [n for n in operator.notices if n.code == "resized"]
    # A viewer's resize changes nothing and tells nobody.
    await watcher.ws.send_bytes(ttyd.Resize(80, 24).serialize())
    await asyncio.sleep(timeout(1))
    assert await agent.pane_size() == (46, 40)
    assert not [n for n in operator.notices if n.code == "resized"]
    await operator.close()
    await watcher.close()
    for http in sessions:
        await http.close()


async def _terminal_of(http: aiohttp.ClientSession, agent_id: str) -> Terminal:
    ws = await http.ws_connect(f"/agents/{agent_id}/ws", protocols=("tty",))
    await ws.send_bytes(ttyd.Handshake().serialize())
    return Terminal(ws, 80, 24)


async def test_fifty_viewers_receive_the_same_bytes_in_order(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    viewers = [await open_terminal(client, agent.name) for _ in range(50)]
    for viewer in viewers:
        await viewer.wait_text("$")
    marks = [len(v.output) for v in viewers]
    await viewers[0].send_input(b"seq 1 2000 | sed 's/^/n=/'; echo done-$((1000+1))\r")
    for viewer in viewers:
        await viewer.wait_text("done-1001", within=30)
    # Up to the marker every viewer has it all: no waiting for stragglers.
    end = b"done-1001"
    tails = {
        bytes(v.output[m : v.output.index(end, m) + len(end)])
        for v, m in zip(viewers, marks, strict=True)
    }
    # Everyone saw the same byte sequence after their (identical) snapshots.
    assert len(tails) == 1
    (tail,) = tails
    assert b"n=2000" in tail
    assert await agent.client_count() == 1
    for viewer in viewers:
        await viewer.close()


async def test_stalled_viewer_does_not_delay_others(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    stalled = await ws_connect(client, f"/agents/{agent.name}/ws")
    await stalled.send_bytes(ttyd.Handshake().serialize())
    # `stalled` is never read from again: its socket buffers fill up.
    reader = await open_terminal(client, agent.name)
    await reader.wait_text("$")
    await reader.send_input(b"seq 1 200000 | sed 's/^/flood /'; echo flood-$((9*9))-end\r")
    await reader.wait_text("flood-81-end", within=60)
    hub_stats = (await (await client.get("/api/agents")).json())["agents"][0]
    assert hub_stats["viewers"] == 2
    hub = client.app[FLEET].get(agent.name)
    assert max(v.queued_bytes for v in hub.viewers) <= DEFAULT_VIEWER_QUEUE_BYTES
    await reader.close()
    await stalled.close()


async def test_a_viewer_socket_buffers_little_in_the_kernel(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    # What a viewer does not take waits in its bounded queue, not in an
    # autotuned kernel buffer of megabytes; and small frames leave at once.
    client = await gateway(agent)
    viewer = await open_terminal(client, agent.name)
    await viewer.wait_text("$")
    sockets = [
        handler.transport.get_extra_info("socket")
        for handler in client.server.runner.server.connections
        if handler.transport is not None
    ]
    # Linux doubles what it is asked for (its bookkeeping).
    (ws,) = [
        sock
        for sock in sockets
        if VIEWER_SEND_BUFFER
        <= sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        <= 2 * VIEWER_SEND_BUFFER
    ]
    assert ws.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    await viewer.close()


async def test_paused_viewer_is_bounded_then_resynced(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent, viewer_queue_bytes=4096)
    paused = await open_terminal(client, agent.name)
    other = await open_terminal(client, agent.name)
    await paused.wait_text("$")
    await other.wait_text("$")
    await paused.ws.send_bytes(ttyd.Pause().serialize())
    # Whole distinct screens, paced so tmux sends each one (~30 KB in all).
    await other.send_input(
        b'for i in $(seq 1 20); do clear; seq -f "frame $i row %g ........" 1 22;'
        b" sleep 0.02; done; echo paused-$((3*3))-done\r"
    )
    await other.wait_text("paused-9-done")
    hub = client.app[FLEET].get(agent.name)
    assert max(v.queued_bytes for v in hub.viewers) <= 4096
    assert "paused-9-done" not in paused.screen.text()
    assert hub.statistics().resyncs >= 1
    await paused.ws.send_bytes(ttyd.Resume().serialize())
    await paused.wait_text("paused-9-done")
    await eventually(lambda: matches_tmux(agent, paused), message="resynced screen equals tmux")
    await paused.close()
    await other.close()


async def test_bad_frames_get_clean_close_codes(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    cases: list[tuple[bytes, int]] = [
        (b"not a handshake", 1002),  # first message must be the JSON handshake
    ]
    for first, code in cases:
        ws = await ws_connect(client, f"/agents/{agent.name}/ws")
        await ws.send_bytes(first)
        msg = await ws.receive(timeout=timeout(5))
        while msg.type == WSMsgType.BINARY:
            msg = await ws.receive(timeout=timeout(5))
        assert msg.type == WSMsgType.CLOSE
        assert ws.close_code == code
    ws = await ws_connect(client, f"/agents/{agent.name}/ws")
    await ws.send_bytes(ttyd.Handshake().serialize())
    await ws.send_bytes(b"1{not json")
    while (msg := await ws.receive(timeout=timeout(5))).type == WSMsgType.BINARY:
        pass
    assert ws.close_code == 1002
    ws = await ws_connect(client, f"/agents/{agent.name}/ws")
    await ws.send_bytes(ttyd.Handshake().serialize())
    await ws.send_bytes(b"0" + b"x" * (64 * 1024 + 1))
    while (msg := await ws.receive(timeout=timeout(5))).type == WSMsgType.BINARY:
        pass
    assert ws.close_code == 1009
    # Bad viewers cost nothing upstream: still the gateway's one tmux client.
    await eventually(lambda: equals(agent.client_count(), 1), message="one upstream")


async def test_shutdown_closes_viewers_with_1001(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    viewer = await open_terminal(client, agent.name)
    await viewer.wait_text("$")
    await client.server.close()
    assert await viewer.wait_closed() == 1001


def _last_row(viewer: Terminal) -> int:
    return max(map(int, re.findall(r"row (\d+)", viewer.screen.text())), default=0)


async def test_viewers_joining_during_a_flood_end_equal_to_tmux(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    first = await open_terminal(client, agent.name)
    await first.wait_text("$")
    await first.send_input(
        b"for i in $(seq 1 30000); do printf '\\033[3%dmrow %d\\033[0m\\n' $((i%8)) $i; done;"
        b" echo flood-$((5*5))-over\r"
    )
    late = []
    for row in (2000, 8000, 14000):
        # Join while the flood is on: once the first viewer's screen is past this row.
        await eventually(lambda row=row: _last_row(first) >= row, within=60, message=str(row))
        late.append(await open_terminal(client, agent.name))
    for viewer in [first, *late]:
        await viewer.wait_text("flood-25-over", within=60)
    for viewer in [first, *late]:
        await eventually(lambda v=viewer: matches_tmux(agent, v), message="equal to tmux")
        await viewer.close()


async def test_hostile_output_neither_crashes_nor_answers(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    viewer = await open_terminal(client, agent.name)
    await viewer.wait_text("$")
    hub = client.app[FLEET].get(agent.name)
    # Device queries, a 100 KB title, absurd parameters, invalid UTF-8 and C1 bytes.
    command = (
        b"printf '\\033[6n\\033[c\\033[>c\\033]2;%0100000d\\a' 0;"
        b" printf '\\033[99999999999A\\033[1;99999999H\\033[99999@\\033[?99999h';"
        b" printf '\\377\\376\\300\\200\\302\\233\\033[;;;;;;;;;;;;;;;;;;;;;;;;m\\033c';"
        b" echo survived-$((6*7))\r"
    )
    sent_before = hub.upstream.statistics().bytes_out
    await viewer.send_input(command)
    await viewer.wait_text("survived-42", within=30)
    await eventually(lambda: matches_tmux(agent, viewer), message="screen equals tmux")
    # Only our one input frame went upstream: no query was answered.
    assert hub.upstream.statistics().bytes_out == sent_before + len(command) + 1
    assert len(hub.title) <= 1024
    await viewer.close()


async def test_security_headers(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    page = await client.get(f"/agents/{agent.name}/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    api = await client.get("/api/agents")
    assert api.headers["Cache-Control"] == "no-store"
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    missing = await client.get("/api/agents/nope/screen")
    assert missing.headers["Cache-Control"] == "no-store"


async def test_the_favicon_is_public_and_an_svg(agent: LocalAgent, gateway: GatewayFactory) -> None:
    users = (User("olga", hash_password("pw"), Role.OPERATOR),)
    client = await gateway(agent, users=users)
    # Logged out: the login page shows it too.
    for path in ("/favicon.ico", "/favicon.svg"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 200, path
        assert response.content_type == "image/svg+xml"
        assert (await response.read()).startswith(b"<svg ")
        etag = response.headers["ETag"]
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304
    # What needs a session still does.
    assert (await client.get("/", allow_redirects=False)).status == 303
