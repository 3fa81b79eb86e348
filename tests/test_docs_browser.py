"""``/docs`` renders Swagger UI in a real Chromium that may reach nothing but the manager."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e import E2E

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = os.environ.get("JOBBERS_TEST_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: .ci/run installs it")
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


async def test_docs_render_offline_with_no_csp_violation(e2e: E2E) -> None:
    manager = await asyncio.to_thread(e2e.platform.manager)
    local = urlsplit(manager.url).netloc
    elsewhere: list[str] = []
    errors: list[str] = []
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        page = await browser.new_page()

        async def only_local(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if urlsplit(url).netloc == local:
                await route.continue_()  # type: ignore[attr-defined]
            else:
                elsewhere.append(url)
                await route.abort()  # type: ignore[attr-defined]

        await page.route("**/*", only_local)
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{manager.url}/docs")
        await page.locator('.opblock-summary-path[data-path="/task-status/{task_id}"]').wait_for(timeout=20_000)
        title = await page.locator(".title").first.inner_text()
        await browser.close()

    assert "Jobbers" in title
    assert elsewhere == [] and errors == [], (elsewhere, errors)
