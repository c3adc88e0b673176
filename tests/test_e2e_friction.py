"""End to end, the dashboard's friction (issue 14, items 9 to 13): Chromium, the real gateway.

The Logs button of an agent that is no container, who resized the agent
and putting the size back, a phone's key row, command bar and header, the
command bars' one behaviour, and share links told apart by a label.
Screenshots go to test-output/e2e/ (tests/browser.py).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, WebSocket, expect

from gateway.auth import hash_password
from gateway.users import Role, User

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, contains, equals, eventually
from .test_e2e import ready_shell, url, wait_screen

PHONE = {"width": 390, "height": 844}
PASSWORD = "pw-friction"
USERS = tuple(
    User(name, hash_password(PASSWORD), role)
    for name, role in (("olga", Role.OPERATOR), ("otto", Role.OPERATOR), ("vic", Role.VIEWER))
)
# A time of day, as results are stamped: 09:41:07.
STAMP = r"\d\d:\d\d:\d\d"


async def log_in(page: Page, client: TestClient[Any, Any], name: str, next_path: str) -> None:
    await page.goto(url(client, f"/login?next={next_path}"))
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(url(client, next_path))


async def test_logs_is_disabled_with_a_tooltip_for_an_agent_that_is_no_container(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "plain")
    client = await gateway(agent)
    page = await browsers.page("operator")
    await page.goto(url(client, "/agents/plain/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    logs = page.locator("#logs-toggle")
    await expect(logs).to_be_disabled()
    await expect(logs).to_have_attribute("title", re.compile("not a container"))
    # Nothing opens, even when the click is forced past the disabled state.
    await logs.click(force=True)
    await expect(page.locator("#logs")).to_be_hidden()
    await browsers.screenshot(page, "logs-disabled")


async def test_who_resized_is_told_to_the_others_who_may_put_the_size_back(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "sized")
    client = await gateway(agent, users=USERS)
    olga = await browsers.page("olga-phone", viewport=PHONE)
    otto = await browsers.page("otto-desktop")
    vic = await browsers.page("vic-viewer")
    for page, name in ((olga, "olga"), (otto, "otto"), (vic, "vic")):
        await log_in(page, client, name, "/agents/sized/")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert await agent.pane_size() == (100, 30)

    await olga.click("#fit")
    await eventually(
        lambda: _narrower(agent, 60), message="the phone's fit resized the agent narrower"
    )
    narrow = await agent.pane_size()
    told = otto.locator("#resized")
    await expect(told).to_be_visible()
    await expect(otto.locator("#resized-text")).to_contain_text("olga resized the agent")
    await expect(otto.locator("#resized-text")).to_contain_text(f"{narrow[0]}x{narrow[1]}")
    await expect(otto.locator("#resize-restore")).to_have_text("restore size (100x30)")
    # A viewer is told too, but may not resize.
    await expect(vic.locator("#resized-text")).to_contain_text("olga resized the agent")
    await expect(vic.locator("#resize-restore")).to_be_hidden()
    # Who resized is not told about themselves.
    await expect(olga.locator("#resized")).to_be_hidden()
    await browsers.screenshot(otto, "told-who-resized")

    await otto.click("#resize-restore")
    await eventually(lambda: equals(agent.pane_size(), (100, 30)), message="the size put back")
    await expect(otto.locator("#resized")).to_be_hidden()
    await expect(olga.locator("#resized-text")).to_contain_text("otto resized the agent to 100x30")
    await browsers.screenshot(olga, "told-size-restored")


async def _narrower(agent: Any, columns: int) -> bool:
    size: tuple[int, int] = await agent.pane_size()
    return size[0] < columns


# How many rows a flex header's visible children wrap onto.
HEADER_ROWS = """(selector) => {
    const tops = new Set();
    const bar = document.querySelector(selector);
    // The items that wrap: a group's own (the tools, the terminal's who-and-how).
    const items = [...bar.children].flatMap(
        (child) => (child.matches(".tools, .ident") ? [...child.children] : [child]));
    for (const child of items) {
        const box = child.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) continue;
        tops.add(Math.round(box.top + box.height / 2));
    }
    // Children whose middles are within a few pixels share a row.
    const rows = [...tops].sort((a, b) => a - b);
    return rows.filter((top, i) => i === 0 || top - rows[i - 1] > 6).length;
}"""


async def test_a_phone_operator_has_a_key_row_a_bare_command_and_a_short_header(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "pocket")
    client = await gateway(agent, users=USERS)
    phone = await browsers.page("operator-phone", viewport=PHONE, has_touch=True)
    sent: list[bytes] = []

    def record(socket: WebSocket) -> None:
        socket.on(
            "framesent",
            lambda p: sent.append(p if isinstance(p, bytes) else p.encode()),
        )

    phone.on("websocket", record)
    await log_in(phone, client, "olga", "/agents/pocket/")
    await expect(phone.locator("#status")).to_have_attribute("data-state", "connected")
    keys = phone.locator("#keys")
    await expect(keys).to_be_visible()
    names = await keys.locator("button").all_inner_texts()
    for name in ("Esc", "Tab", "Ctrl-C", "←", "↑", "↓", "→", "Enter", *"0123456789"):
        assert name in names, (name, names)

    # Typed without Enter: on the prompt, not run.
    await phone.fill("#command-line", "echo ")
    await phone.click("#command-type")
    await eventually(lambda: contains(agent.capture(), "$ echo"), message="typed, not run")
    await expect(phone.locator("#command-line")).to_have_value("")
    for key in ("4", "2", "Enter"):
        await keys.get_by_role("button", name=key, exact=True).tap()
    await wait_screen(phone, "\n42\n")
    await phone.fill("#command-line", "sleep 300")
    await phone.click("#command-send")
    await eventually(lambda: contains(agent.capture(), "$ sleep 300\n"), message="sleeping")
    await keys.get_by_role("button", name="Ctrl-C").tap()
    await eventually(lambda: _last_line_is(agent, "$"), message="Ctrl-C ended the sleep")
    await keys.get_by_role("button", name="↑").tap()
    await eventually(lambda: _last_line_is(agent, "$ sleep 300"), message="Up recalled it")
    before = len(sent)
    await keys.get_by_role("button", name="Esc").tap()
    await keys.get_by_role("button", name="Tab").tap()
    await keys.get_by_role("button", name="Ctrl-C").tap()
    typed = [frame for frame in sent[before:] if frame[:1] == b"0"]
    assert typed == [b"0\x1b", b"0\t", b"0\x03"], typed

    header_rows = await phone.evaluate(HEADER_ROWS, ".bar")
    assert header_rows <= 2, f"the terminal's header wraps to {header_rows} rows"
    await browsers.screenshot(phone, "key-row")

    await phone.goto(url(client, "/"))
    pick = phone.locator('.tile[data-agent="pocket"] .pick input')
    await expect(pick).to_be_visible()
    box = await pick.bounding_box()
    assert box is not None
    assert box["width"] >= 24, box
    assert box["height"] >= 24, box
    header_rows = await phone.evaluate(HEADER_ROWS, ".bar")
    assert header_rows <= 2, f"the wall's header wraps to {header_rows} rows"
    await browsers.screenshot(phone, "wall-phone")

    # A viewer on a phone gets no key row, and its keys are refused anyway.
    viewer = await browsers.page("viewer-phone", viewport=PHONE, has_touch=True)
    await log_in(viewer, client, "vic", "/agents/pocket/")
    await expect(viewer.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(viewer.locator("#mode")).to_be_visible()
    await expect(viewer.locator("#keys")).to_be_hidden()
    assert await viewer.evaluate(HEADER_ROWS, ".bar") <= 2, "a viewer's header"
    await viewer.evaluate(RAW_INPUT, "echo viewer-raw\r")
    await phone.goto(url(client, "/agents/pocket/"))
    await phone.fill("#command-line", "echo after-viewer")
    await phone.click("#command-send")
    await eventually(lambda: contains(agent.capture(), "\nafter-viewer\n"), message="marker")
    assert "viewer-raw" not in await agent.capture()
    await browsers.screenshot(viewer, "viewer-no-keys")


# The page's own socket is not reachable: a second one, as a script of the
# page could open, sends input straight away.
RAW_INPUT = """(text) => new Promise((resolve) => {
    const ws = new WebSocket(location.href.replace(/^http/, "ws") + "ws", ["tty"]);
    ws.onopen = () => {
        ws.send(JSON.stringify({AuthToken: ""}));
        ws.send(new TextEncoder().encode("0" + text));
        setTimeout(() => { ws.close(); resolve(); }, 500);
    };
    ws.onerror = () => resolve();
})"""


async def _last_line_is(agent: Any, text: str) -> bool:
    lines = (await agent.capture()).rstrip("\n").split("\n")
    return bool(lines) and lines[-1].rstrip() == text


async def test_both_command_bars_clear_recall_with_up_and_stamp_results(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "bar")
    client = await gateway(agent)
    page = await browsers.page("operator")
    await page.goto(url(client, "/"))
    await page.check('.tile[data-agent="bar"] .pick input')
    line = page.locator("#command-line")
    await line.fill("echo wall-$((6*7))")
    await line.press("Enter")
    result = page.locator('.tile[data-agent="bar"] .result')
    await expect(result).to_have_text(re.compile(rf"^{STAMP} echo wall-\$\(\(6\*7\)\): sent$"))
    await expect(line).to_have_value("")
    await eventually(lambda: contains(agent.capture(), "\nwall-42\n"), message="wall sent it")
    # A second Enter on the empty bar broadcasts nothing again.
    await line.press("Enter")
    await line.press("ArrowUp")
    await expect(line).to_have_value("echo wall-$((6*7))")
    await line.press("ArrowDown")
    await expect(line).to_have_value("")
    assert (await agent.capture()).count("wall-42") == 1
    await browsers.screenshot(page, "wall-command")

    await page.goto(url(client, "/agents/bar/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    line = page.locator("#command-line")
    await line.fill("echo term-$((5*5))")
    await line.press("Enter")
    await expect(page.locator("#command-result")).to_have_text(re.compile(rf"^{STAMP} sent$"))
    await expect(line).to_have_value("")
    await line.press("ArrowUp")
    await expect(line).to_have_value("echo term-$((5*5))")
    await browsers.screenshot(page, "terminal-command")


async def test_share_links_have_a_label_shown_as_text_and_their_max_uses(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "lent")
    client = await gateway(agent, users=USERS)
    olga = await browsers.page("operator")
    await log_in(olga, client, "olga", "/agents/lent/")
    await olga.click("#share-toggle")
    hostile = '<img src=x onerror="window.pwned=1">for bob'
    await olga.fill("#share-label", hostile)
    await olga.select_option("#share-max-uses", "1")
    await olga.click("#share-form button[type=submit]")
    first = olga.locator("#share-list li").first
    await expect(first.locator(".share-label")).to_have_text(hostile)
    await expect(first).to_contain_text("used 0 of 1")
    assert await first.locator("img").count() == 0
    link = await olga.locator(".share-url").input_value()
    # One without a label, any number of uses.
    await olga.fill("#share-label", "")
    await olga.select_option("#share-max-uses", "")
    await olga.click("#share-form button[type=submit]")
    await expect(olga.locator("#share-list li")).to_have_count(2)
    second = olga.locator("#share-list li").nth(1)
    await expect(second.locator(".share-label")).to_have_text("no label")
    await expect(second).to_contain_text("used 0 times, no limit")
    # A bidi override is refused by the gateway, and the form says why.
    await olga.fill("#share-label", "txt\u202eexe.evil")
    await olga.click("#share-form button[type=submit]")
    await expect(olga.locator("#share-error")).to_contain_text("bidi")
    await expect(olga.locator("#share-list li")).to_have_count(2)
    assert await olga.evaluate("window.pwned") is None

    guest = await browsers.page("spectator", viewport=PHONE)
    await guest.goto(link)
    await guest.wait_for_url("**/agents/lent/")
    await olga.click("#share-toggle")
    await olga.click("#share-toggle")
    await expect(olga.locator("#share-list li").first).to_contain_text("used 1 of 1")
    await browsers.screenshot(olga, "share-labels")
