"""End to end, the dashboard's friction (issue 14, items 9 to 13): Chromium, the real gateway.

Share links told apart by a label. Screenshots go to test-output/e2e/
(tests/browser.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from gateway.auth import hash_password
from gateway.users import Role, User

from .browser import Browsers
from .conftest import AgentFactory, GatewayFactory
from .test_e2e import ready_shell, url

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
