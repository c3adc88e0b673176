"""End to end: Debian's Chromium, the real gateway, real ttyd + tmux agents.

Each test leaves screenshots in test-output/e2e/ (see tests/browser.py).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from playwright.async_api import Dialog, Page, Route, expect

from gateway.appkeys import SOCKETS
from gateway.auth import hash_password
from gateway.config import DockerSettings
from gateway.local import LocalAgent
from gateway.users import Role, User
from gateway.web.sse import EventStream

from .browser import Browsers, screen_text
from .conftest import (
    AgentFactory,
    GatewayFactory,
    contains,
    equals,
    eventually,
    origin_of,
    timeout,
)


async def ready_shell(make_agent: AgentFactory, name: str) -> LocalAgent:
    agent = await make_agent(name, columns=100, rows=30)

    async def prompt() -> bool:
        return (await agent.capture()).strip() == "$"

    await eventually(prompt, message=f"{name} prompt")
    return agent


async def wait_screen(page: Page, needle: str, within: float = 10.0) -> str:
    async def shows() -> bool:
        return needle in await screen_text(page)

    await eventually(shows, within=within, message=f"{needle!r} in xterm.js")
    return await screen_text(page)


async def same_screen(page: Page, agent: LocalAgent) -> bool:
    """xterm.js shows what tmux has (tmux drops trailing blanks; xterm.js keeps typed ones)."""
    ours = [line.rstrip() for line in (await screen_text(page)).split("\n")]
    theirs = [line.rstrip() for line in (await agent.capture()).split("\n")]
    return ours == theirs


def url(client: TestClient[Any, Any], path: str) -> str:
    return origin_of(client) + path


async def test_wall_then_terminal_typing_reaches_tmux(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    alpha, beta = await ready_shell(make_agent, "alpha"), await ready_shell(make_agent, "beta")
    client = await gateway(alpha, beta)
    page = await browsers.page("operator")
    await page.goto(url(client, "/"))

    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(2)
    await expect(page.locator('.tile[data-agent="alpha"] .state')).to_have_text("connected")
    await expect(page.locator('.tile[data-agent="alpha"] .screen')).to_contain_text("$")
    await expect(page.locator("#feed")).to_have_text("gateway: live")
    # Output on an agent refreshes its tile (through an `activity` event).
    await alpha.tmux("send-keys", "-t", "alpha", "echo tile-$((40+2))", "Enter")
    await expect(page.locator('.tile[data-agent="alpha"] .screen')).to_contain_text(
        "tile-42", timeout=timeout(10) * 1000
    )
    await page.fill("#filter", "bet")
    await expect(tiles).to_have_count(1)
    await page.fill("#filter", "")
    await browsers.screenshot(page, "wall")

    # One command to several agents, with a result per agent.
    await beta.stop_ttyd()
    await expect(page.locator('.tile[data-agent="beta"] .state')).not_to_have_text("connected")
    for agent_id in ("alpha", "beta"):
        await page.check(f'.tile[data-agent="{agent_id}"] .pick input')
    await page.fill("#command-line", "echo broadcast-$((5*5))")
    await page.click("#command-send")
    await expect(page.locator('.tile[data-agent="alpha"] .result')).to_have_text(
        re.compile(r"^\d\d:\d\d:\d\d echo broadcast-\$\(\(5\*5\)\): sent$")
    )
    await expect(page.locator('.tile[data-agent="beta"] .result')).to_have_attribute(
        "data-ok", "false"
    )
    await expect(page.locator("#command-summary")).to_have_text(re.compile(r" sent to 1 of 2$"))
    await eventually(lambda: contains(alpha.capture(), "\nbroadcast-25\n"), message="alpha ran it")
    await beta.start_ttyd()

    phone = await browsers.page("phone", viewport={"width": 390, "height": 844})
    await phone.goto(url(client, "/"))
    await expect(phone.locator(".tile")).to_have_count(2)
    await expect(phone.locator('.tile[data-agent="alpha"] .screen')).to_contain_text("broadcast")
    box = await phone.locator(".tile").first.bounding_box()
    assert box is not None
    assert box["width"] <= 390
    await browsers.screenshot(phone, "wall-phone")

    await page.click('.tile[data-agent="alpha"]')
    await page.wait_for_url("**/agents/alpha/")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#mode")).to_be_hidden()
    # The page takes the agent's size; it does not impose the window's.
    await eventually(
        lambda: equals(page.evaluate("[gateway.term.cols, gateway.term.rows]"), [100, 30]),
        message="xterm.js at the agent's size",
    )
    assert await alpha.pane_size() == (100, 30)

    await page.locator("#terminal").click()
    await page.keyboard.type("echo hello-$RANDOM")
    await page.keyboard.press("Enter")
    await wait_screen(page, "\nhello-")
    printed = re.findall(r"^hello-(\d+)$", await screen_text(page), re.MULTILINE)
    assert len(printed) == 1, "the shell expanded $RANDOM once"
    assert f"\nhello-{printed[0]}\n" in await alpha.capture()
    await eventually(lambda: same_screen(page, alpha), message="xterm.js screen equals tmux")
    await browsers.screenshot(page, "terminal")

    # An operator may fit the agent to the window: the agent, then the page, change size.
    await page.click("#fit")

    async def resized() -> bool:
        return await alpha.pane_size() != (100, 30)

    await eventually(resized, message="agent resized to window")


async def test_an_upstream_outage_shows_and_the_screen_comes_back_exactly(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "flaky")
    client = await gateway(agent)
    page = await browsers.page("operator")
    await page.goto(url(client, "/agents/flaky/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await agent.tmux("send-keys", "-t", "flaky", "printf 'line %s\\n' 1 2 3", "Enter")
    await wait_screen(page, "line 3")

    await agent.stop_ttyd()
    await expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#status-text")).to_have_text("reconnecting")
    await expect(page.locator("#link")).to_have_attribute("data-state", "live")
    await browsers.screenshot(page, "outage")
    # The agent goes on while nobody can reach it.
    await agent.tmux("send-keys", "-t", "flaky", "echo while-away", "Enter")
    await agent.start_ttyd()
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "connected", timeout=timeout(15) * 1000
    )
    await wait_screen(page, "\nwhile-away\n")
    await eventually(
        lambda: same_screen(page, agent), message="restored screen equals tmux capture-pane"
    )


async def test_a_spectator_watches_read_only_until_the_link_is_revoked(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "shared")
    client = await gateway(agent, users=(User("olga", hash_password("pw-olga"), Role.OPERATOR),))
    olga = await browsers.page("operator")
    await olga.goto(url(client, "/"))
    await expect(olga).to_have_url(re.compile(r"/login\?next="))
    await olga.fill("input[name=username]", "olga")
    await olga.fill("input[name=password]", "wrong")
    await olga.click("button[type=submit]")
    await expect(olga.locator("#error")).to_be_visible()
    await olga.fill("input[name=password]", "pw-olga")
    await olga.click("button[type=submit]")
    await expect(olga.locator(".tile")).to_have_count(1)
    await expect(olga.locator("#who")).to_have_text("olga (operator)")

    await olga.goto(url(client, "/agents/shared/"))
    await olga.click("#share-toggle")
    await olga.select_option("#share-ttl", "900")
    await olga.click("#share-form button[type=submit]")
    link = await olga.locator(".share-url").input_value()
    assert link.startswith(origin_of(client) + "/s/")

    guest = await browsers.page("spectator", viewport={"width": 390, "height": 844})
    await guest.goto(link)
    await guest.wait_for_url("**/agents/shared/")
    await expect(guest.locator("#mode")).to_be_visible()
    await expect(guest.locator("#fit")).to_be_hidden()
    await expect(guest.locator("#share-toggle")).to_be_hidden()
    await expect(olga.locator("#presence")).to_contain_text("2 watching", timeout=10_000)

    await expect(guest.locator("#command")).to_be_hidden()
    await olga.fill("#command-line", "echo from-olga")
    await olga.press("#command-line", "Enter")
    await expect(olga.locator("#command-result")).to_have_text(re.compile(r"^[\d:]{8} sent$"))
    await wait_screen(guest, "\nfrom-olga\n")
    await guest.locator("#terminal").click()
    await guest.keyboard.type("echo from-guest")
    await guest.keyboard.press("Enter")
    # A positive marker after the guest's keys: typed by olga once the guest
    # is done, it goes the long way (HTTP, ttyd, tmux); keys the guest's socket
    # had carried would have reached tmux first.
    await olga.fill("#command-line", "echo after-guest")
    await olga.press("#command-line", "Enter")
    await wait_screen(guest, "\nafter-guest\n")
    assert "from-guest" not in await agent.capture()
    await browsers.screenshot(guest, "spectator-phone")

    await olga.click("#share-list .revoke")
    await expect(guest.locator("#link")).to_have_attribute("data-state", "ended")
    await expect(guest.locator("#link-text")).to_contain_text("revoked or expired")
    await expect(olga.locator("#share-list li")).to_have_count(0)


# Crafted login links: the query exactly as a link carries it, and where the
# browser must land after logging in (always a path on the gateway itself).
HOSTILE_NEXT = (
    ("next=/%09/evil.example/", "/"),  # tab: the URL parser drops it, "//evil.example/"
    ("next=/%0a/evil.example/", "/"),  # newline
    ("next=/%0D/evil.example/", "/"),  # carriage return
    ("next=/%0d%0a/evil.example/", "/"),
    ("next=%2F%09%2Fevil.example%2F", "/"),
    ("next=%09//evil.example/", "/"),
    ("next=/%09%5Cevil.example/", "/"),  # tab, then a backslash (a slash in http URLs)
    ("next=/%5Cevil.example/", "/"),  # the backslash itself
    ("next=%5C%5Cevil.example/", "/"),
    ("next=//evil.example/", "/"),  # scheme-relative
    ("next=///evil.example/", "/"),
    ("next=%2F%2Fevil.example%2F", "/"),
    ("next=%20%20//evil.example/", "/"),  # leading spaces are trimmed
    ("next=https%3A%2F%2Fevil.example%2F", "/"),
    ("next=HTTPS://evil.example/", "/"),
    ("next=javascript:alert(1)", "/"),
    ("next=/.//evil.example/", "/"),  # normalizes to the path "//evil.example/"
    # Look-alikes that are really paths here: they stay on the gateway.
    ("next=/%2509/evil.example/", "/%09/evil.example/"),
    ("next=/@evil.example/", "/@evil.example/"),
)


async def test_a_crafted_login_link_never_leaves_the_gateway(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "door")
    client = await gateway(agent, users=(User("olga", hash_password("pw-olga"), Role.OPERATOR),))
    own = f"127.0.0.1:{client.port}"
    page = await browsers.page("login")
    # Nothing may leave loopback: any other host is refused and noted, and so
    # is a dialog (a javascript: URL that ran).
    strays: list[str] = []
    dialogs: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            await route.continue_()
        else:
            strays.append(route.request.url)
            await route.abort()

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    await page.context.route("**/*", loopback_only)
    page.on("dialog", dismiss)

    async def log_in(query: str) -> str:
        """Where the browser is once the login form, opened with ``query``, is submitted."""
        strays.clear()
        dialogs.clear()
        await page.goto(url(client, f"/login?{query}"))
        await page.fill("input[name=username]", "olga")
        await page.fill("input[name=password]", "pw-olga")
        await page.click("button[type=submit]")
        # A refused request still ends in a committed (error) page: wait for it.
        await eventually(
            lambda: bool(dialogs) or urlsplit(page.url).path != "/login",
            message=f"leaving /login?{query}",
        )
        await page.wait_for_load_state()
        return page.url

    escaped = []
    for query, landing in HOSTILE_NEXT:
        final = await log_in(query)
        parts = urlsplit(final)
        if strays or dialogs or (parts.scheme, parts.netloc) != ("http", own):
            escaped.append(f"/login?{query} -> {final}, requested {strays}, dialogs {dialogs}")
        elif final != url(client, landing):
            escaped.append(f"/login?{query} -> {final}, not {landing}")
    assert escaped == [], "crafted login links went astray:\n" + "\n".join(escaped)

    # An honest link still goes where the user was headed.
    assert await log_in("next=/agents/door/") == url(client, "/agents/door/")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert strays == []
    assert dialogs == []


async def test_the_logs_panel_streams_and_resumes_without_duplicates(
    gateway: GatewayFactory, docker_engine: Any, containers: Any, browsers: Browsers
) -> None:
    client = await gateway(docker=DockerSettings(url=docker_engine.url))
    box = containers.run("logger")
    page = await browsers.page("operator")
    await page.goto(url(client, "/agents/logger/"))
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "connected", timeout=timeout(20) * 1000
    )
    containers.log(box, "\x1b[32mgreen line\x1b[0m", "ERROR something broke")
    await page.click("#logs-toggle")
    rows = page.locator(".logs-row")
    await expect(rows.filter(has_text="something broke")).to_have_count(1)
    green = rows.filter(has_text="green line").locator(".logs-text span")
    await expect(green).to_have_css("color", "rgb(13, 188, 121)")
    await expect(rows.filter(has_text="something broke")).to_have_attribute("data-level", "error")
    containers.log(box, "to stderr", stream=2)
    await expect(rows.filter(has_text="to stderr")).to_have_attribute("data-stream", "stderr")
    await browsers.screenshot(page, "logs")

    # The gateway drops every event stream; lines written meanwhile arrive once.
    for connection in list(client.app[SOCKETS]):
        if isinstance(connection, EventStream):
            await connection.close()
    containers.log(box, *(f"during-{n}" for n in range(5)))
    await expect(rows.filter(has_text="during-4")).to_have_count(1, timeout=timeout(15) * 1000)
    texts = await page.evaluate("gateway.logs.buffer.lines.map((l) => l.line)")
    assert len(texts) == len(set(texts)), "a line showed twice"
    assert [t for t in texts if t.startswith("during-")] == [f"during-{n}" for n in range(5)]

    # Filter, then a flood: 100,000 lines, and the DOM holds only what is in view.
    await page.fill(".logs-filter", "during-3")
    await expect(rows).to_have_count(1)
    await page.fill(".logs-filter", "")
    await page.evaluate(
        """() => {
            const logs = gateway.logs;
            for (let n = 0; n < 100000; n++) {
                logs.pending.push([`ffff-${n}`, {ts: "", stream: "stdout", line: `flood ${n}`}]);
            }
            logs.flush();
        }"""
    )
    await expect(rows.last).to_contain_text("flood 99999")
    assert await rows.count() < 200
    await page.click(".logs-follow")  # pause, then look at the middle
    await page.evaluate(
        "() => { const view = document.querySelector('.logs-view');"
        " view.scrollTop = view.scrollHeight / 2; }"
    )
    await expect(rows.filter(has_text="flood 5")).not_to_have_count(0)
