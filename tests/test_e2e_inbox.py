"""End to end, the attention inbox in Chromium: the real Claude Code, a real gateway.

The card shows the prompt, its buttons answer it through the safe path, and
the command runs (seen on the agent's screen). Screenshots: test-output/e2e/
(docs/inbox.png is its "inbox" one, copied by hand: a test writes nothing
into the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from capture.record import end_pane
from gateway.local import LocalAgent

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory, eventually, origin_of, timeout
from .test_e2e import url
from .test_prompts import claude, pytestmark  # noqa: F401 - pytestmark: the CLIs' skip


async def test_the_inbox_shows_the_prompt_and_its_buttons_answer_it(
    make_agent: AgentFactory, gateway: GatewayFactory, browsers: Browsers, tmp_path: Path
) -> None:
    agent = await claude(make_agent, tmp_path, "claude-1", "claude-approved")
    client = await gateway(agent)  # open mode: an operator
    page = await browsers.page("operator")
    try:
        await page.goto(url(client, "/"))
        await expect(page.locator("#feed")).to_have_attribute("data-state", "live")
        await _ask(client, "claude-1")
        card = page.locator('#inbox .card[data-agent="claude-1"]')
        await expect(card.locator(".question")).to_have_text(
            "Do you want to proceed?", timeout=timeout(60) * 1000
        )
        await expect(card.locator(".subject")).to_have_text("python3 hello.py\nRun hello.py")
        buttons = card.locator(".options button")
        await expect(buttons).to_have_text(
            ["1. Yes", "2. Yes, and don’t ask again for: python3 *", "3. No"]
        )
        tile = page.locator('.tile[data-agent="claude-1"] .activity')
        await expect(tile).to_have_text("waiting for approval")
        await browsers.screenshot(page, "inbox")
        # Answered once the prompt has held still (the gateway refuses it sooner).
        await _settled(client)
        await buttons.first.click()
        await expect(card.locator(".answer")).to_contain_text("answered")
        # No prompt any more; the card stays until someone looks: the turn ended unread.
        await expect(card.locator(".question")).to_have_count(0, timeout=timeout(30) * 1000)
        await eventually(lambda: _shows(agent, "hello from hello.py"), within=timeout(30),
                         message="the approved command ran")  # fmt: skip
        await expect(card).to_have_attribute("data-state", "idle", timeout=timeout(30) * 1000)
        await expect(tile).to_have_text("idle · new")
    finally:
        await end_pane(agent)


async def _first(client: TestClient[Any, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = (await (await client.get("/api/agents")).json())["agents"][0]
    return agent


async def _ask(client: TestClient[Any, Any], agent_id: str) -> None:
    """Start Claude Code at the pane's shell and ask it to run hello.py."""

    async def connected() -> bool:
        return bool((await _first(client))["status"] == "connected")

    async def ready() -> bool:
        agent = await _first(client)
        return bool(agent["profile"] == "claude" and agent["state"] == "idle")

    async def type_in(data: str) -> None:
        headers = {"Origin": origin_of(client)}
        path = f"/api/agents/{agent_id}/input"
        sent = await client.post(path, json={"data": data}, headers=headers)
        assert sent.status == 200, await sent.text()

    await eventually(connected, message="connected")
    await type_in("claude\r")
    await eventually(ready, within=timeout(60), message="Claude Code's prompt")
    await type_in("Run hello.py")
    await type_in("\r")


async def _settled(client: TestClient[Any, Any]) -> None:
    async def settled() -> bool:
        prompt = (await _first(client))["prompt"]
        return bool(prompt and prompt["settled"])

    await eventually(settled, message="the prompt settled")


async def _shows(agent: LocalAgent, text: str) -> bool:
    return text in await agent.capture()
