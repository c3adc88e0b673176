"""A real Chromium for end-to-end tests: Debian's, driven by Playwright.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``
(``apt-get install chromium``), headless, with the flags that keep it off
the network (DESIGN §7). Every test's pages are screenshotted into
``test-output/e2e/`` when it ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "e2e"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class Browsers:
    """Browser contexts (each its own cookie jar) for one test, screenshotted at the end."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser = browser
        self.name = name
        self.contexts: list[BrowserContext] = []
        self.pages: list[tuple[str, Page]] = []

    async def page(self, label: str, **options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await self.browser.new_context(**options)
        self.contexts.append(context)
        page = await context.new_page()
        self.pages.append((label, page))
        return page

    async def screenshot(self, page: Page, label: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{self.name}-{label}.png"
        await page.screenshot(path=str(path))
        return path

    async def close(self) -> None:
        for label, page in self.pages:
            if not page.is_closed():
                await self.screenshot(page, f"{label}-end")
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def browsers(request: pytest.FixtureRequest) -> AsyncIterator[Browsers]:
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        made = Browsers(browser, name)
        try:
            yield made
        finally:
            await made.close()
            await browser.close()


async def screen_text(page: Page) -> str:
    """The xterm.js viewport as text, one line per row, like `tmux capture-pane -p`."""
    text: str = await page.evaluate(
        """() => {
            const term = window.gateway.term;
            const buffer = term.buffer.active;
            const lines = [];
            for (let y = 0; y < term.rows; y++) {
                const line = buffer.getLine(buffer.viewportY + y);
                lines.push(line ? line.translateToString(true) : "");
            }
            return lines.join("\\n") + "\\n";
        }"""
    )
    return text
