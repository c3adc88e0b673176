"""End to end, the dashboard's second pass (issue 14): Chromium, the real gateway, ttyd, tmux.

The wheel never types, tiles show the whole screen and keep their places,
program titles reach tiles and tabs, the tab says the agent's state, and
the favicon exists. Screenshots go to test-output/e2e/ (tests/browser.py).
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, WebSocket, expect

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, eventually
from .test_e2e import ready_shell, url, wait_screen


async def test_the_mouse_wheel_over_a_terminal_never_types(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "wheel")
    client = await gateway(agent)
    page = await browsers.page("operator")
    # Every frame this page sends; ttyd's input frames start with "0".
    sent: list[bytes] = []

    def record(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: sent.append(_as_bytes(payload)))

    page.on("websocket", record)
    await page.goto(url(client, "/agents/wheel/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    # Something to recall: an Up key would put it back on the prompt.
    await agent.tmux("send-keys", "-t", "wheel", "echo earlier-command", "Enter")
    await wait_screen(page, "\nearlier-command\n")
    # tmux draws on the alternate screen: where xterm.js turns the wheel into arrow keys.
    assert await page.evaluate("gateway.term.buffer.active.type") == "alternate"

    box = await page.locator(".xterm-screen").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = len(sent)
    for delta in (-120, -120, -120, 120, 120, 120, 120):
        await page.mouse.wheel(0, delta)
        await asyncio.sleep(0.05)
    # A positive marker after the wheel: typed keys still go, and reach a
    # clean prompt (a recalled command would prefix them).
    await page.keyboard.type("echo after-wheel")
    await page.keyboard.press("Enter")
    await wait_screen(page, "\nafter-wheel\n")
    typed = b"".join(frame[1:] for frame in sent[before:] if frame[:1] == b"0")
    assert b"\x1b" not in typed, f"the wheel sent keys: {typed!r}"
    assert typed == b"echo after-wheel\r"
    assert "\n$ echo after-wheel\nafter-wheel\n" in await agent.capture()

    # A program (here tmux itself) that asks for mouse reports gets no wheel either.
    await agent.tmux("set", "-g", "mouse", "on")
    await eventually(lambda: _mouse_tracking(page), message="xterm.js reporting the mouse to tmux")
    before = len(sent)
    for delta in (-120, -120, 120):
        await page.mouse.wheel(0, delta)
        await asyncio.sleep(0.05)
    await page.keyboard.type("echo after-reports")
    await page.keyboard.press("Enter")
    await wait_screen(page, "\nafter-reports\n")
    typed = b"".join(frame[1:] for frame in sent[before:] if frame[:1] == b"0")
    assert typed == b"echo after-reports\r", f"the wheel was reported: {typed!r}"
    await browsers.screenshot(page, "after-wheel")


async def _mouse_tracking(page: Page) -> bool:
    mode: str = await page.evaluate("gateway.term.modes.mouseTrackingMode")
    return mode != "none"


def _as_bytes(payload: str | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode()
