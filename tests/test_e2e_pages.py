"""End to end, in Chromium: what the pages say when something is over or wrong.

Issue 14, items 5, 6 and 8: a session that ended (logout, a revoked link,
a restarted gateway) says so and offers only what can work; the wall and
the terminal name an agent's state with one word, and every tile is marked
stale while the event feed is down; a browser gets a small HTML page, not
JSON, for a used login link, an agent it may not open, or a dead link.
Screenshots go to test-output/e2e/ (see tests/browser.py).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Dialog, Page, expect

from gateway.appkeys import AUTH, SOCKETS
from gateway.auth import SessionStore, hash_password
from gateway.users import Role, User
from gateway.web.sse import EventStream

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, origin_of, timeout
from .test_cli import free_port, read_until, serving
from .test_e2e import ready_shell, url

SESSION_ENDED = "your session ended — log in again"
LINK_GONE = "this link was revoked or expired — ask for a new one"
OLGA = User("olga", hash_password("pw-olga"), Role.OPERATOR)


async def log_in(page: Page, client: TestClient[Any, Any], next_path: str = "/") -> None:
    await page.goto(url(client, f"/login?next={next_path}"))
    await page.fill("input[name=username]", "olga")
    await page.fill("input[name=password]", "pw-olga")
    await page.click("button[type=submit]")
    await page.wait_for_url(url(client, next_path))


async def share_link(page: Page, agent_id: str) -> dict[str, Any]:
    """A spectator link, made by the logged-in operator of ``page`` through the API."""
    link: dict[str, Any] = await page.evaluate(
        """async (agent) => {
            const answer = await fetch(`/api/agents/${agent}/shares`, {
                method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({ttl_seconds: 900}),
            });
            return await answer.json();
        }""",
        agent_id,
    )
    return link


async def revoke(page: Page, share_id: str) -> None:
    status = await page.evaluate(
        "async (id) => (await fetch(`/api/shares/${id}`, {method: 'DELETE'})).status", share_id
    )
    assert status in (200, 204)


async def shows_a_page(page: Page, heading: str, reason: str) -> None:
    """An HTML error page: its heading and reason in words, never a JSON body."""
    await expect(page.locator("main.problem h1")).to_have_text(heading)
    await expect(page.locator("main.problem .reason")).to_contain_text(reason)
    assert not (await page.locator("body").inner_text()).lstrip().startswith("{")


async def test_error_pages_are_html_with_a_way_back_and_escape_the_url(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    shared, other = await ready_shell(make_agent, "shared"), await ready_shell(make_agent, "other")
    client = await gateway(shared, other, users=(OLGA,))
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    # A login link used twice: the second time, words and a way to log in.
    await client.app[AUTH].add_one_time_login("once-only", "olga")
    olga = await browsers.page("operator")
    olga.on("dialog", dismiss)
    await olga.goto(url(client, "/login/once-only"))
    await olga.wait_for_url(url(client, "/"))
    answer = await olga.goto(url(client, "/login/once-only"))
    assert answer is not None
    assert answer.status == 404
    await shows_a_page(olga, "This login link does not work", "works once")
    await browsers.screenshot(olga, "used-login-link")
    await olga.click("main.problem a:has-text('Log in')")
    await olga.wait_for_url(re.compile(r"/login$"))

    # An unknown agent, with the security headers of every page.
    answer = await olga.goto(url(client, "/agents/nope/"))
    assert answer is not None
    assert answer.status == 404
    headers = await answer.all_headers()
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "text/html; charset=utf-8"
    await shows_a_page(olga, "No such agent", "There is no agent 'nope' here")
    await olga.click("main.problem a:has-text('All agents')")
    await expect(olga.locator(".tile")).to_have_count(2)

    # Whatever the URL holds is shown as text, escaped: markup, an RTL
    # override, a very long id. Nothing runs, nothing is rendered.
    hostile = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%22%27%E2%80%AEtxt.exe"
    await olga.goto(url(client, f"/agents/{hostile}/"))
    await shows_a_page(olga, "No such agent", "There is no agent")
    reason = await olga.locator("main.problem .reason").inner_text()
    assert "<img src=x onerror=alert(1)>" in reason
    assert "\\u202e" in reason
    assert "\u202e" not in reason
    assert await olga.locator("main.problem img").count() == 0
    await olga.goto(url(client, "/agents/" + "x" * 5000 + "/"))
    assert len(await olga.locator("main.problem .reason").inner_text()) < 200
    await browsers.screenshot(olga, "no-such-agent")
    # Scripts that ask for JSON still get it, and the API always does.
    asked = await olga.evaluate(
        """async () => {
            const page = await fetch("/agents/nope/", {headers: {Accept: "application/json"}});
            const api = await fetch("/api/agents/nope/screen");
            return [page.status, await page.json(), api.status, await api.json()];
        }"""
    )
    assert asked[0] == 404
    assert asked[1]["error"] == "not_found"
    assert asked[2] == 404
    assert asked[3]["error"] == "not_found"

    # A spectator opening another agent: the same page as for one that does
    # not exist, so it learns nothing of which agents there are.
    link = await share_link(olga, "shared")
    guest = await browsers.page("spectator")
    guest.on("dialog", dismiss)
    await guest.goto(link["url"])
    await guest.wait_for_url("**/agents/shared/")
    missing = await guest.goto(url(client, "/agents/no-such-one/"))
    assert missing is not None
    assert missing.status == 404
    missing_page = await missing.text()
    hidden = await guest.goto(url(client, "/agents/other/"))
    assert hidden is not None
    assert hidden.status == 404
    await shows_a_page(guest, "No such agent", "There is no agent 'other' here")
    assert missing_page.replace("no-such-one", "other") == await hidden.text()
    await browsers.screenshot(guest, "spectator-other-agent")

    # A revoked link opened again: why, and what to do.
    await revoke(olga, link["id"])
    answer = await guest.goto(link["url"])
    assert answer is not None
    assert answer.status == 404
    await shows_a_page(guest, "This link does not work", "revoked or expired — ask for a new one")
    await browsers.screenshot(guest, "revoked-link")
    assert dialogs == []


async def test_a_session_that_ended_says_log_in_again_and_retries_nothing(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "shared")
    client = await gateway(agent, users=(OLGA,))
    wall = await browsers.page("wall")
    await log_in(wall, client)
    await expect(wall.locator("#feed")).to_have_text("gateway: live")
    terminal = await wall.context.new_page()
    browsers.pages.append(("terminal", terminal))
    await terminal.goto(url(client, "/agents/shared/"))
    await expect(terminal.locator("#link")).to_have_attribute("data-state", "live")

    # Logged out elsewhere (another tab of the same browser).
    await wall.evaluate("fetch('/api/logout', {method: 'POST'})")
    await expect(terminal.locator("#link-text")).to_have_text(SESSION_ENDED)
    await expect(terminal.locator("#retry")).to_be_hidden()
    again = terminal.locator("#login-again")
    await expect(again).to_be_visible()
    await expect(again).to_have_attribute("href", "/login?next=%2Fagents%2Fshared%2F")
    # And it offers no control that would fail.
    for control in ("#command", "#share-toggle", "#fit"):
        await expect(terminal.locator(control)).to_be_hidden()
    await expect(wall.locator("#feed")).to_have_text(SESSION_ENDED, timeout=timeout(15) * 1000)
    await expect(wall.locator("#login-again")).to_be_visible()
    await expect(wall.locator(".tile")).to_have_attribute("data-stale", "true")
    await browsers.screenshot(terminal, "logged-out")
    await browsers.screenshot(wall, "wall-logged-out")
    # The link leads to the login form and back to the terminal.
    await again.click()
    await terminal.fill("input[name=username]", "olga")
    await terminal.fill("input[name=password]", "pw-olga")
    await terminal.click("button[type=submit]")
    await terminal.wait_for_url(url(client, "/agents/shared/"))
    await expect(terminal.locator("#link")).to_have_attribute("data-state", "live")

    # A restart: the new gateway knows no session, and the sockets of the old
    # one closed with 1001. The tab says so at once; it does not count down
    # through a dozen refused upgrades.
    upgrades: list[str] = []
    terminal.on("websocket", lambda ws: upgrades.append(ws.url))
    client.app[AUTH].sessions = SessionStore()
    for connection in list(client.app[SOCKETS]):
        await connection.close(code=1001, message=b"server shutdown")
    await expect(terminal.locator("#link-text")).to_have_text(
        SESSION_ENDED, timeout=timeout(15) * 1000
    )
    await expect(terminal.locator("#retry")).to_be_hidden()
    await expect(terminal.locator("#status")).to_have_attribute("data-stale", "true")
    await terminal.wait_for_timeout(3000)
    assert len(upgrades) <= 2, f"retried after the session ended: {upgrades}"
    await expect(terminal.locator("#link-text")).to_have_text(SESSION_ENDED)
    await browsers.screenshot(terminal, "after-restart")


async def test_a_revoked_spectator_is_told_to_ask_for_a_new_link(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "shared")
    client = await gateway(agent, users=(OLGA,))
    olga = await browsers.page("operator")
    await log_in(olga, client)
    link = await share_link(olga, "shared")
    guest = await browsers.page("spectator", viewport={"width": 390, "height": 844})
    await guest.goto(link["url"])
    await guest.wait_for_url("**/agents/shared/")
    await expect(guest.locator("#link")).to_have_attribute("data-state", "live")

    await revoke(olga, link["id"])
    await expect(guest.locator("#link-text")).to_have_text(LINK_GONE)
    # Nothing on offer that cannot work: no retry, no login.
    await expect(guest.locator("#retry")).to_be_hidden()
    await expect(guest.locator("#login-again")).to_be_hidden()
    await browsers.screenshot(guest, "revoked")
    # A reload: the same words, not a login form it has no credentials for.
    answer = await guest.reload()
    assert answer is not None
    assert answer.status == 401
    await shows_a_page(guest, "This link does not work", "revoked or expired — ask for a new one")
    assert await guest.locator("input[name=password]").count() == 0
    assert origin_of(client) in guest.url


async def test_the_wall_and_the_terminal_use_one_vocabulary_and_tiles_go_stale(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    alpha = await ready_shell(make_agent, "alpha")
    client = await gateway(alpha)
    wall = await browsers.page("wall")
    await wall.goto(url(client, "/"))
    terminal = await browsers.page("terminal")
    await terminal.goto(url(client, "/agents/alpha/"))
    tile_state = wall.locator('.tile[data-agent="alpha"] .state')
    badge = terminal.locator("#status-text")

    await expect(tile_state).to_have_text("connected")
    await expect(badge).to_have_text("connected")
    # A dead ttyd: one word on both pages, and the transport is another badge.
    await alpha.stop_ttyd()
    await expect(tile_state).to_have_text("reconnecting", timeout=timeout(10) * 1000)
    await expect(badge).to_have_text("reconnecting")
    await expect(terminal.locator("#link-text")).to_have_text("gateway: live")
    await browsers.screenshot(terminal, "agent-reconnecting")
    await alpha.start_ttyd()
    await expect(tile_state).to_have_text("connected", timeout=timeout(15) * 1000)
    await expect(badge).to_have_text("connected")

    # The event feed goes down (the gateway drops it and cannot be reached
    # again): every tile is marked stale, and comes back fresh with the feed.
    await wall.route("**/api/events*", lambda route: route.abort())
    for connection in list(client.app[SOCKETS]):
        if isinstance(connection, EventStream):
            await connection.close()
    await expect(wall.locator("#feed")).to_have_text("gateway: offline · tiles are stale")
    await expect(wall.locator('.tile[data-stale="true"]')).to_have_count(1)
    await browsers.screenshot(wall, "stale")
    await wall.unroute("**/api/events*")
    await expect(wall.locator("#feed")).to_have_text("gateway: live", timeout=timeout(15) * 1000)
    await expect(wall.locator('.tile[data-stale="false"]')).to_have_count(1)


async def test_make_run_prints_its_login_link_last_and_a_fresh_one_on_enter(
    tmp_path: Path, browsers: Browsers
) -> None:
    port = free_port()
    private, cwd = tmp_path / "tmp", tmp_path / "cwd"
    private.mkdir()
    cwd.mkdir()
    base = f"http://127.0.0.1:{port}"
    console: list[str] = []
    demo = serving(
        "serve", "--demo", "--listen", f"127.0.0.1:{port}",
        env={"TMPDIR": str(private)}, cwd=cwd, stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with demo as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        first = await asyncio.wait_for(
            read_until(proc.stdout, "log in (works once): ", console), timeout(60)
        )
        # The link is the last thing the console says, and says how to get another.
        assert "press Enter for a fresh login link" in "".join(console)
        with_more = asyncio.ensure_future(proc.stdout.readline())
        await asyncio.sleep(1)
        assert not with_more.done(), "the console went on after the link"

        # The login page: the demo's admin has no password, only links.
        page = await browsers.page("demo")
        await page.goto(f"{base}/login")
        await expect(page.locator("#hint")).to_contain_text(
            "one-time login link `make run` printed"
        )
        await expect(page.locator("#hint")).to_contain_text("press Enter")
        await expect(page.locator("#login")).to_be_hidden()
        await browsers.screenshot(page, "demo-login")
        for n in range(20):  # requests the console would have shown, one line each
            await page.goto(f"{base}/login?n={n}")

        # Enter on the console: a fresh link; the one before stops working.
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        line = (await asyncio.wait_for(with_more, timeout(10))).decode()
        assert line.startswith("log in (works once): ")
        fresh = line.split(": ", 1)[1].strip()
        assert fresh.startswith(f"{base}/login/")
        assert fresh != first
        await page.goto(first)
        await shows_a_page(page, "This login link does not work", "press Enter in its console")
        await browsers.screenshot(page, "demo-old-link")
        await page.goto(fresh)
        await page.wait_for_url(f"{base}/")
        await expect(page.locator(".tile")).to_have_count(2, timeout=timeout(20) * 1000)
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    # No request on the console; they are in state/access.log, tokens cut out.
    assert '"GET /login' not in stderr
    access = (cwd / "state" / "access.log").read_text()
    assert access.count('"GET /login?n=') == 20
    assert "/login/[redacted]" in access
    assert first.rsplit("/", 1)[1] not in access
    assert (cwd / "state" / "access.log").stat().st_mode & 0o077 == 0
