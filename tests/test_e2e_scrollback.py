"""End to end, scrollback (issue 14 item 2): Chromium, the real gateway, ttyd, tmux.

A browser that joins after the agent printed gets the history in xterm.js's
own scrollback, the same lines and colours tmux keeps, so the wheel scrolls
it and search finds a line long scrolled off, and says "no match" when
there is none. Screenshots go to test-output/e2e/ (tests/browser.py).
"""

from __future__ import annotations

import re

from playwright.async_api import expect

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, eventually
from .test_e2e import ready_shell, url, wait_screen
from .test_screen_history import AGENT_LIKE, tmux_history

SGR = re.compile(r"\x1b\[[0-9;]*m")

# The browser's scrollback, as text, and the colour of each line's first cell
# (xterm.js's palette index, or -1 for the default).
HISTORY = """() => {
  const buffer = gateway.term.buffer.normal;
  const lines = [];
  for (let y = 0; y < buffer.baseY; y++) {
    const line = buffer.getLine(y);
    const cell = line.getCell(0);
    lines.push([line.translateToString(true), cell.isFgPalette() ? cell.getFgColor() : -1]);
  }
  return lines;
}"""


async def test_a_joining_browser_scrolls_and_searches_tmuxs_history(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "history")
    client = await gateway(agent)
    # Printed before any browser is there: only the gateway's history has it.
    await agent.tmux("send-keys", "-t", "history", AGENT_LIKE + "; echo DONE-$((6*7))", "Enter")

    async def done() -> bool:
        return "DONE-42" in await agent.capture()

    await eventually(done, message="the agent's output")
    page = await browsers.page("operator")
    await page.goto(url(client, "/agents/history/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await wait_screen(page, "DONE-42")
    assert await page.evaluate("gateway.term.buffer.active.type") == "normal"

    theirs = await tmux_history(agent)
    ours = await page.evaluate(HISTORY)
    assert [text.rstrip() for text, _ in ours] == [SGR.sub("", line).rstrip() for line in theirs]
    # Colours: line i starts in palette colour i % 8.
    coloured = {text[:4]: colour for text, colour in ours if text[:4].isdigit()}
    assert (coloured["0001"], coloured["0007"], coloured["0008"]) == (1, 7, 0)

    # The wheel scrolls the history (and types nothing: the prompt stays clean).
    box = await page.locator(".xterm-screen").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.wheel(0, -2000)

    async def scrolled() -> bool:
        top: int = await page.evaluate("gateway.term.buffer.active.viewportY")
        return top < await page.evaluate("gateway.term.buffer.active.baseY")

    await eventually(scrolled, message="the wheel scrolled back")
    await browsers.screenshot(page, "scrollback-wheel")

    # Search finds a line long scrolled off, and says when nothing matches.
    await page.locator(".xterm-helper-textarea").focus()
    await page.keyboard.press("Control+Shift+F")
    search = page.locator("#search")
    await search.fill("0003")
    await search.press("Enter")
    await expect(page.locator("#searchbar")).to_have_attribute("data-result", "found")
    assert (
        await page.evaluate("gateway.term.hasSelection() && gateway.term.getSelection()") == "0003"
    )
    await search.fill("no-such-line-anywhere")
    await search.press("Enter")
    await expect(page.locator("#search-result")).to_have_text("no match")
    await browsers.screenshot(page, "scrollback-search")
    assert (await agent.capture()).rstrip().endswith("DONE-42\n$")
