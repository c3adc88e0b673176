"""End to end, the dashboard's second pass (issue 14): Chromium, the real gateway, ttyd, tmux.

The wheel never types, tiles show the whole screen and keep their places,
program titles reach tiles and tabs, the tab says the agent's state, and
the favicon exists. Screenshots go to test-output/e2e/ (tests/browser.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Page, Response, WebSocket, expect

from gateway.local import LocalAgent

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, eventually, timeout
from .test_e2e import ready_shell, url, wait_screen

PHONE = {"width": 390, "height": 844}


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
    # tmux draws on the primary screen now (its scrollback reaches xterm.js),
    # but a program may still switch: the wheel must never type on either.
    assert await page.evaluate("gateway.term.buffer.active.type") == "normal"

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


# Where a text is drawn inside a tile's screen box, if it is drawn there at
# all: its rectangle must lie within the box (which clips) and not be empty.
SHOWN_IN_TILE = """([agent, needle]) => {
    const screen = document.querySelector(`.tile[data-agent="${agent}"] .screen`);
    if (!screen) return "no tile";
    const box = screen.getBoundingClientRect();
    const walker = document.createTreeWalker(screen, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(needle);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + needle.length);
        const r = range.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) return "not drawn";
        const inside = r.left >= box.left - 0.5 && r.right <= box.right + 0.5 &&
            r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
        return inside ? "shown" : `outside: ${JSON.stringify(r)} in ${JSON.stringify(box)}`;
    }
    return "not in the tile";
}"""


async def shown_in_tile(page: Page, agent_id: str, needle: str) -> str:
    answer: str = await page.evaluate(SHOWN_IN_TILE, [agent_id, needle])
    return answer


async def eventually_shown(page: Page, agent_id: str, needle: str, within: float = 5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(within)
    while (answer := await shown_in_tile(page, agent_id, needle)) != "shown":
        assert loop.time() < deadline, f"{needle} in the tile of {agent_id}: {answer}"
        await asyncio.sleep(0.1)


async def test_a_tile_shows_the_whole_screen_on_desktop_and_phone(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await make_agent("tall", columns=120, rows=40)
    await eventually(lambda: _prompt(agent), message="tall prompt")
    # The first row, the widest row and the last row (where the prompt is) all written.
    wide = "W" * 110 + "-END"
    await agent.tmux(
        "send-keys", "-t", "tall",
        f"clear; echo TOP-ROW; echo {wide}; seq -f 'row-%g' 3 39; printf BOTTOM-ROW", "Enter",
    )  # fmt: skip
    await eventually(lambda: _last_row_is(agent, "BOTTOM-ROW$"), message="the bottom row written")
    # Too big to make out whole in a tile: the rows around the cursor instead.
    huge = await make_agent("huge", columns=250, rows=80)
    await eventually(lambda: _prompt(huge), message="huge prompt")
    await huge.tmux(
        "send-keys", "-t", "huge", "clear; seq -f 'row-%g' 1 79; printf PROMPT-ROW", "Enter"
    )
    await eventually(lambda: _last_row_is(huge, "PROMPT-ROW$"), message="huge's bottom row")
    client = await gateway(agent, huge)
    for label, viewport in (("desktop", {"width": 1280, "height": 800}), ("phone", PHONE)):
        page = await browsers.page(label, viewport=viewport)
        await page.goto(url(client, "/"))
        await expect(page.locator('.tile[data-agent="tall"] .screen')).to_contain_text("BOTTOM-ROW")
        try:
            for needle in ("TOP-ROW", "BOTTOM-ROW", "W-END", "row-20"):
                await eventually_shown(page, "tall", needle)
            await eventually_shown(page, "huge", "PROMPT-ROW")
            await eventually_shown(page, "huge", "row-70")
            # The first match in the page is row 1 itself (row-10 and on come later).
            assert (await shown_in_tile(page, "huge", "row-1")).startswith("outside")
        finally:
            await browsers.screenshot(page, f"wall-{label}")
        tile = await page.locator('.tile[data-agent="tall"]').bounding_box()
        assert tile is not None
        assert tile["width"] <= viewport["width"]


async def _prompt(agent: LocalAgent) -> bool:
    return (await agent.capture()).strip() == "$"


async def _last_row_is(agent: LocalAgent, text: str) -> bool:
    return (await agent.capture()).rstrip("\n").split("\n")[-1].rstrip() == text


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
    await expect(bravo_state).not_to_have_text("connected", timeout=timeout(10) * 1000)
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


async def test_program_titles_reach_tiles_and_the_tab(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "titled")
    client = await gateway(agent)
    wall = await browsers.page("wall")
    await wall.goto(url(client, "/"))
    await expect(wall.locator('.tile[data-agent="titled"] .state')).to_have_text("connected")
    terminal = await browsers.page("terminal")
    await terminal.goto(url(client, "/agents/titled/"))
    await expect(terminal.locator("#status")).to_have_attribute("data-state", "connected")

    # What agent CLIs do: OSC 2 with their state, which tmux passes on
    # only with set-titles on.
    await agent.tmux("send-keys", "-t", "titled", r"printf '\033]2;%s\007' 'build 3 of 7'", "Enter")
    await expect(wall.locator('.tile[data-agent="titled"] .title')).to_have_text(
        "build 3 of 7", timeout=timeout(10) * 1000
    )
    await expect(terminal).to_have_title("titled (connected) · build 3 of 7")
    await agent.tmux("send-keys", "-t", "titled", r"printf '\033]0;%s\007' 'tests green'", "Enter")
    await expect(wall.locator('.tile[data-agent="titled"] .title')).to_have_text("tests green")
    await expect(terminal).to_have_title("titled (connected) · tests green")
    await browsers.screenshot(wall, "titled-wall")

    # A page opened later gets the title from the gateway's screen.
    late = await browsers.page("late")
    await late.goto(url(client, "/agents/titled/"))
    await expect(late).to_have_title("titled (connected) · tests green")


async def test_the_tab_says_the_agent_state_and_there_is_a_favicon(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers
) -> None:
    agent = await ready_shell(make_agent, "tabbed")
    client = await gateway(agent)
    page = await browsers.page("operator")
    failed: list[str] = []

    def note(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", note)
    await page.goto(url(client, "/agents/tabbed/"))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page).to_have_title("tabbed (connected)")
    await agent.stop_ttyd()
    await expect(page).to_have_title("tabbed (reconnecting)", timeout=timeout(10) * 1000)
    await browsers.screenshot(page, "tab-reconnecting")
    await agent.start_ttyd()
    await expect(page).to_have_title("tabbed (connected)", timeout=timeout(15) * 1000)

    # Every page names an icon that loads, and /favicon.ico (which browsers
    # ask for on their own, and pages without a link get) answers too.
    for path in ("/", "/agents/tabbed/", "/login"):
        await page.goto(url(client, path))
        icon = await page.evaluate("document.querySelector('link[rel=icon]')?.href ?? null")
        assert icon is not None, f"{path} names no icon"
        for source in (icon, url(client, "/favicon.ico")):
            assert await _loads_as_image(page, source), f"{source} is not an image"
    assert failed == []


async def _loads_as_image(page: Page, source: str) -> Any:
    return await page.evaluate(
        """(source) => new Promise((resolve) => {
            const img = new Image();
            img.onload = () => resolve(img.naturalWidth > 0);
            img.onerror = () => resolve(false);
            img.src = source;
        })""",
        source,
    )
