"""End to end, the dashboard's second pass (issue 14): Chromium, the real gateway, ttyd, tmux.

The wheel never types, tiles show the whole screen and keep their places,
program titles reach tiles and tabs, the tab says the agent's state, and
the favicon exists. Screenshots go to test-output/e2e/ (tests/browser.py).
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, WebSocket, expect

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, eventually, timeout
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


async def tile_order(page: Page) -> list[str]:
    order: list[str] = await page.evaluate(
        "[...document.querySelectorAll('#wall .tile')].map((t) => t.dataset.agent)"
    )
    return order


async def test_tiles_keep_their_places_and_attention_waits_for_the_pointer(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agents = [await ready_shell(make_agent, name) for name in ("alpha", "bravo", "charlie")]
    client = await gateway(*agents)
    page = await browsers.page("operator")
    await page.goto(url(client, "/"))
    await expect(page.locator("#wall .tile")).to_have_count(3)
    by_name = ["alpha", "bravo", "charlie"]
    assert await tile_order(page) == by_name

    # The last agent busy, the others quiet: it keeps its place.
    busy = agents[2]
    await busy.tmux(
        "send-keys", "-t", "charlie", "while :; do date +tick-%s%N; sleep 0.2; done", "Enter"
    )
    screen = page.locator('.tile[data-agent="charlie"] .screen')
    await expect(screen).to_contain_text("tick-", timeout=timeout(10) * 1000)
    first = await screen.text_content()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(4)
    while loop.time() < deadline:
        assert await tile_order(page) == by_name, "a busy agent moved"
        await asyncio.sleep(0.1)
    assert await screen.text_content() != first, "the busy tile was redrawn meanwhile"

    # An agent that wants attention moves, but not under the pointer.
    await page.hover('.tile[data-agent="alpha"] .screen')
    await agents[1].stop_ttyd()
    bravo_state = page.locator('.tile[data-agent="bravo"] .state')
    await expect(bravo_state).not_to_have_text("running", timeout=timeout(10) * 1000)
    await asyncio.sleep(1.5)
    assert await tile_order(page) == by_name, "a tile moved under the pointer"
    await browsers.screenshot(page, "attention-held")
    await page.mouse.move(5, 5)  # onto the header: off the wall
    await eventually(
        lambda: _order_is(page, ["bravo", "alpha", "charlie"]),
        message="the agent that wants attention first, once the pointer left",
    )
    await agents[1].start_ttyd()


async def _order_is(page: Page, expected: list[str]) -> bool:
    return await tile_order(page) == expected
