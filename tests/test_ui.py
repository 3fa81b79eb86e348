"""The admin UI in a real browser (headless Chromium through Playwright), against a real manager,
worker and scheduler process on a throwaway Redis.

Every run writes a full-page screenshot of each page to ``artifacts/screenshots/`` (not committed).
Chromium comes from the system (``/usr/bin/chromium``, or ``$JOBBERS_TEST_CHROMIUM``); without it
these tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from jobbers.models.task import Task, TaskStatus
from jobbers.registry import register_task
from tests.e2e import E2E
from tests.e2e_tasks import keyed_nap

playwright_api = pytest.importorskip("playwright.async_api")
async_playwright = playwright_api.async_playwright
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("JOBBERS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "s3cret-token"
XSS = "<img src=x onerror=window.__xss=1>"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: .ci/run installs it")
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

expect.set_options(timeout=15_000)


@dataclass
class UI:
    """A browser page on the UI of a running manager."""

    page: object  # playwright Page (untyped here: tests/ is not type-checked strictly)
    url: str
    e2e: E2E
    errors: list[str] = field(default_factory=list)

    async def open(self, route: str = "") -> None:
        await self.page.goto(f"{self.url}/ui/#/{route}")

    async def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def button(self, name: str | re.Pattern[str]) -> object:
        return self.page.get_by_role("button", name=name)

    def card(self, label: str) -> object:
        return self.page.locator(".card", has=self.page.locator(".card-label", has_text=label)).locator(
            ".card-value"
        )

    def row(self, value: str) -> object:
        return self.page.locator(f'tr[data-id="{value}"], tr[data-queue="{value}"], tr[data-role="{value}"]')


@pytest.fixture
async def playwright() -> AsyncIterator[object]:
    async with async_playwright() as p:
        yield p


async def open_ui(
    e2e: E2E, playwright: object, worker_env: dict[str, str] | None = None, **manager_env: str
) -> AsyncIterator[UI]:
    """Start a worker, a scheduler and the manager, and open a browser page (while they boot)."""
    e2e.platform.worker(**(worker_env or {}))
    e2e.platform.scheduler()
    starting = asyncio.create_task(asyncio.to_thread(e2e.platform.manager, **manager_env))
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    manager = await starting
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    ui = UI(page, manager.url, e2e)
    page.on("pageerror", lambda exc: ui.errors.append(str(exc)))
    # Console errors include Content-Security-Policy violations. API answers the UI handles (401
    # before the token, 422 shown on a form) are logged as failed loads: those are expected.
    page.on(
        "console",
        lambda msg: ui.errors.append(msg.text)
        if msg.type == "error" and not msg.text.startswith("Failed to load resource")
        else None,
    )
    page.on("dialog", lambda dialog: dialog.accept())  # confirm() before destructive actions
    yield ui
    await context.close()
    await browser.close()
    assert ui.errors == [], ui.errors  # no uncaught error in the page's scripts


@pytest.fixture
async def ui(e2e: E2E, playwright: object) -> AsyncIterator[UI]:
    async for opened in open_ui(e2e, playwright):
        yield opened


async def test_submit_from_the_form_and_watch_the_task_complete(ui: UI) -> None:
    await ui.open("submit")
    await ui.page.get_by_label("Task", exact=True).select_option(label="nap (v1)")
    await expect(ui.page.locator(".about")).to_contain_text("optional: seconds")
    params = ui.page.get_by_label("Params (JSON object)")
    params_error = ui.page.locator('[data-error-for="params"]')
    await params.fill('{"seconds": ')
    await ui.button("Submit task").click()
    await expect(params_error).to_contain_text("Not valid JSON")
    await params.fill('{"minutes": 1}')  # the API's 422 lands next to the field
    await ui.button("Submit task").click()
    await expect(params_error).to_contain_text("minutes")
    await params.fill('{"seconds": 1.5}')
    await ui.shot("submit")
    await ui.button("Submit task").click()

    await ui.page.wait_for_url(re.compile(r"#/task/"))
    task_id = ui.page.url.rsplit("/", 1)[1]
    status = ui.page.locator("h1 .live-status")
    await expect(status).to_have_text("started")  # polling shows it running ...
    await ui.shot("task-running")
    await expect(status).to_have_text("completed")  # ... and done, without a reload
    await expect(ui.page.locator("[data-field=worker_id]")).not_to_have_text("—")
    await expect(ui.page.locator("pre.json").nth(1)).to_have_text('"rested"')
    await ui.shot("task")
    assert (await ui.e2e.store.get_task(task_id)).status is TaskStatus.COMPLETED


async def test_cancel_running_tasks_from_the_active_page_and_the_task_page(ui: UI) -> None:
    first = await ui.e2e.client.submit("nap", {"seconds": 30})
    second = await ui.e2e.client.submit("nap", {"seconds": 30})
    await ui.e2e.wait_started([first.id, second.id])

    await ui.open("active")
    row = ui.row(first.id)
    await expect(row).to_contain_text("nap")
    await expect(row.locator("td").nth(4)).to_contain_text(":")  # the worker id (host:pid:...)
    await ui.shot("active")
    await row.get_by_role("checkbox").check()
    await ui.button("Cancel selected (1)").click()
    await expect(ui.page.locator(".notice.ok")).to_contain_text("1 requested")
    await ui.e2e.wait_terminal([first.id], seconds=10)

    await ui.open(f"task/{second.id}")
    await expect(ui.page.locator("h1 .live-status")).to_have_text("started")
    await ui.button("Cancel task").click()
    await expect(ui.page.locator("h1 .live-status")).to_have_text("cancelled")
    await expect(ui.button("Cancel task")).to_be_hidden()
    tasks = await ui.e2e.store.get_tasks([first.id, second.id])
    assert [t.status for t in tasks] == [TaskStatus.CANCELLED, TaskStatus.CANCELLED]


async def test_the_task_page_follows_the_tasks_stream_instead_of_polling(ui: UI) -> None:
    task = await ui.e2e.client.submit("nap", {"seconds": 5})
    reads: list[str] = []
    ui.page.on("request", lambda r: reads.append(r.url) if f"/task-status/{task.id}" in r.url else None)

    await ui.open(f"task/{task.id}")
    status = ui.page.locator("h1 .live-status")
    await expect(status).to_have_text("started")
    await expect(status).to_have_text("completed", timeout=20_000)

    streams = [u for u in reads if u.endswith("/stream")]
    plain = [u for u in reads if not u.endswith("/stream")]
    assert len(streams) == 1  # one stream carried started and completed ...
    assert len(plain) <= 2  # ... where the 2 s refresh would have read the task 3 times or more


def back_in_dlq(errors: int) -> Callable[[Task], bool]:
    return lambda t: len(t.errors) == errors and t.dead_lettered and t.status.is_terminal


async def test_resubmit_and_delete_dead_letters(ui: UI) -> None:
    again = await ui.e2e.client.submit("flaky")
    dropped = await ui.e2e.client.submit("flaky")
    await ui.e2e.wait_for([again.id, dropped.id], lambda t: t.dead_lettered and t.status.is_terminal)

    await ui.open("dlq")
    row = ui.row(again.id)
    await expect(row).to_contain_text("ConnectionError: upstream timed out")
    await row.locator("summary").click()
    await expect(row.locator(".history li")).to_have_count(3)  # the first run and two retries
    await ui.shot("dlq")

    await row.get_by_role("checkbox").check()
    await ui.button("Resubmit selected (1)").click()
    await expect(ui.page.locator(".notice.ok")).to_contain_text("1 resubmitted")
    # It runs (and fails) again from a reset retry count, and comes back to the DLQ.
    await ui.e2e.wait_for([again.id], back_in_dlq(6))

    await ui.row(dropped.id).get_by_role("checkbox").check()
    await ui.button("Delete selected (1)").click()
    await expect(ui.page.locator(".notice.ok")).to_contain_text("Removed 1")
    await expect(ui.row(dropped.id)).to_have_count(0)
    await expect(ui.row(again.id)).to_have_count(1)

    # The task page offers the DLQ resubmit for a dead letter.
    await ui.open(f"task/{again.id}")
    await expect(ui.page.locator("section").last).to_contain_text("Attempts and errors (6)")
    await ui.button("Resubmit from dead letter queue").click()
    await expect(ui.page.locator(".notice.ok")).to_contain_text("Resubmitted")
    await ui.e2e.wait_for([again.id], lambda t: len(t.errors) == 9 and t.status.is_terminal)


async def test_create_edit_and_delete_queues_and_roles(ui: UI) -> None:
    page = ui.page
    await ui.open("queues")
    await page.get_by_label("Name", exact=True).fill("bad name!")
    await ui.button("Create queue").click()
    name_error = page.locator('[data-error-for="name"]')
    await expect(name_error).to_contain_text("String should match pattern")
    await ui.shot("queues-validation")

    await page.get_by_label("Name", exact=True).fill("reports")
    await page.get_by_label("Max concurrent").fill("3")
    await page.get_by_label("Rate: tasks").fill("100")
    await page.get_by_label("period", exact=True).select_option("hour")
    await ui.button("Create queue").click()
    await expect(ui.row("reports")).to_contain_text("100 per hour")
    await expect(name_error).to_be_empty()

    await ui.button("Edit queue reports").click()
    await page.get_by_label("Max concurrent").fill("0")
    await ui.button("Save changes").click()
    concurrency_error = page.locator('[data-error-for="max_concurrent"]')
    await expect(concurrency_error).to_contain_text("greater than or equal to 1")
    await page.get_by_label("Max concurrent").fill("5")
    await ui.button("Save changes").click()
    await expect(ui.row("reports").locator("td").nth(1)).to_have_text("5")
    await ui.shot("queues")
    queue = await ui.e2e.config.get_queue("reports")
    assert queue is not None and (queue.max_concurrent, queue.rate_numerator) == (5, 100)

    await ui.open("roles")
    await page.get_by_label("Name", exact=True).fill("heavy")
    await page.get_by_role("checkbox", name="reports").check()
    await ui.button("Create role").click()
    await expect(ui.row("heavy")).to_contain_text("reports")
    await ui.button("Edit role heavy").click()
    await page.get_by_role("checkbox", name="default").check()  # a newly checked queue comes last
    await ui.button("Save changes").click()
    await expect(ui.row("heavy")).to_contain_text("reportsdefault")
    role = await ui.e2e.config.get_role("heavy")
    assert role is not None and role.queues == ["reports", "default"]
    await ui.button("Edit role heavy").click()
    await ui.button("Move default up").click()  # the order its workers drain the queues in
    await ui.button("Save changes").click()
    await expect(ui.row("heavy")).to_contain_text("defaultreports")
    await ui.shot("roles")
    role = await ui.e2e.config.get_role("heavy")
    assert role is not None and role.queues == ["default", "reports"]

    await ui.button("Delete role heavy").click()
    await expect(ui.row("heavy")).to_have_count(0)
    await ui.open("queues")
    await ui.button("Delete queue reports").click()
    await expect(ui.row("reports")).to_have_count(0)
    assert await ui.e2e.config.get_queue("reports") is None


async def test_every_page_shows_live_platform_state(ui: UI) -> None:
    c = ui.e2e.client
    done = [await c.submit("noop", {"n": i}) for i in range(3)]
    failed = await c.submit("flaky")
    running = await c.submit("nap", {"seconds": 30})
    later = await c.submit("noop", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    await ui.e2e.wait_terminal([t.id for t in done] + [failed.id])
    await ui.e2e.wait_started([running.id])

    await ui.open()
    await expect(ui.card("workers alive")).to_have_text("1")
    await expect(ui.card("dead-lettered")).to_have_text("1")
    await expect(ui.card("running")).to_have_text("1")
    await expect(ui.page.locator("svg.chart .seg-completed").first).to_be_visible()
    default = ui.row("default").locator("td")
    await expect(default.nth(2)).to_have_text("1")  # running
    await expect(default.nth(4)).to_have_text("1")  # dead-lettered
    await expect(default.nth(5)).to_have_text("3")  # completed in the window
    await expect(ui.page.locator(".overview")).to_contain_text("4 tasks reached a terminal status")
    await ui.shot("overview")

    await ui.open("tasks?status=completed")
    for t in done:
        await expect(ui.row(t.id)).to_contain_text("completed")
    await expect(ui.row(running.id)).to_have_count(0)
    await ui.shot("tasks")

    await ui.open("scheduled")
    await expect(ui.row(later.id)).to_contain_text("in 59m")
    await ui.shot("scheduled")

    # The page follows the platform: a task submitted while it is open appears without a reload.
    await ui.open("tasks")
    await expect(ui.row(done[0].id)).to_have_count(1)
    fresh = await c.submit("noop")
    await expect(ui.row(fresh.id)).to_have_count(1)


async def test_user_text_is_shown_as_text_never_as_markup(ui: UI) -> None:
    task = await ui.e2e.client.submit("noop", {"note": XSS, XSS: "<script>window.__xss=2</script>"})
    await ui.e2e.wait_terminal([task.id])

    await ui.open(f"task/{task.id}")
    params = ui.page.locator("pre.json").first
    await expect(params).to_contain_text(XSS)
    assert json.loads(await params.text_content()) == {"note": XSS, XSS: "<script>window.__xss=2</script>"}
    await ui.open("tasks?task_name=" + XSS)  # a filter value from the URL lands in an input, as text
    await expect(ui.page.get_by_label("Task name")).to_have_value(XSS)
    await ui.open("queues")
    await ui.page.get_by_label("Name", exact=True).fill(XSS)
    await ui.button("Create queue").click()
    await expect(ui.page.locator('[data-error-for="name"]')).to_contain_text("String should match pattern")

    assert await ui.page.locator("main img, main script").count() == 0
    assert await ui.page.evaluate("window.__xss") is None


async def test_ui_asks_for_the_token_and_keeps_it_for_the_tab(e2e: E2E, playwright: object) -> None:
    async for ui in open_ui(e2e, playwright, MANAGER_API_TOKEN=TOKEN):
        async with httpx.AsyncClient(base_url=ui.url) as http:
            assert (await http.get("/ui/")).status_code == 200  # the static files are public ...
            assert (await http.get("/ui/js/api.js")).status_code == 200
            assert (await http.get("/stats")).status_code == 401  # ... the data is not

        await ui.open()
        dialog = ui.page.locator("#token-dialog")
        await expect(dialog).to_be_visible()
        await ui.page.get_by_label("Token", exact=True).fill("wrong")
        await ui.button("Use token").click()
        await expect(dialog).to_contain_text("That token was refused")
        await ui.shot("token")
        await ui.page.get_by_label("Token", exact=True).fill(TOKEN)
        await ui.page.get_by_label("Token", exact=True).press("Enter")
        await expect(dialog).to_be_hidden()
        await expect(ui.page.locator(".cards")).to_contain_text("workers alive")

        await ui.page.reload()  # the token stays for this tab (sessionStorage): no second prompt
        await expect(ui.page.locator(".cards")).to_contain_text("workers alive")
        await expect(dialog).to_be_hidden()
        assert await ui.page.evaluate("sessionStorage.getItem('jobbers.apiToken')") == TOKEN


async def test_the_workers_table_shows_running_tasks_without_waiting_for_a_refresh(
    e2e: E2E, playwright: object
) -> None:
    # A refresh interval far longer than the test: only a report on change can show the count.
    async for ui in open_ui(e2e, playwright, worker_env={"WORKER_REFRESH_INTERVAL": "120"}):
        await ui.open()
        worker = ui.page.locator("tr[data-worker]")
        running = worker.locator("td").nth(3)
        await expect(running).to_have_text("0 / 5")

        naps = [await ui.e2e.client.submit("nap", {"seconds": 60}) for _ in range(5)]
        await ui.e2e.wait_started([t.id for t in naps])
        await expect(running).to_have_text("5 / 5", timeout=8_000)
        await expect(ui.card("running")).to_have_text("5")
        await ui.shot("overview-workers-running")

        for t in naps[:3]:
            await ui.e2e.client.cancel(t.id)
        await ui.e2e.wait_terminal([t.id for t in naps[:3]])
        await expect(running).to_have_text("2 / 5", timeout=8_000)
        await expect(worker).to_have_count(1)


PHONE_ROUTES = ["", "tasks", "active", "scheduled", "dlq", "queues", "roles", "recurring", "workflows", "audit", "submit"]


async def test_every_page_fits_a_phone_screen(ui: UI) -> None:
    c = ui.e2e.client
    failed = await c.submit("flaky", {"note": "x" * 120})
    running = await c.submit("nap", {"seconds": 30})
    await c.submit("noop", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    await ui.e2e.wait_for([failed.id], lambda t: t.dead_lettered and t.status.is_terminal)
    await ui.e2e.wait_started([running.id])
    await ui.page.set_viewport_size({"width": 420, "height": 900})

    for route in [*PHONE_ROUTES, f"task/{failed.id}", f"task/{running.id}"]:
        await ui.open(route)
        await expect(ui.page.locator("main h1")).to_be_visible()
        await ui.page.wait_for_timeout(300)  # let the first refresh render its tables
        widths = await ui.page.evaluate(
            "({page: document.documentElement.scrollWidth, screen: document.documentElement.clientWidth,"
            " header: document.querySelector('header.top').getBoundingClientRect().width})"
        )
        assert widths["page"] <= widths["screen"] == widths["header"], (route, widths)
    await ui.open("")
    await ui.shot("overview-phone")
    # A table wider than the screen scrolls inside its own box instead.
    box = ui.page.locator(".table-scroll", has=ui.page.locator("tr[data-queue]"))
    scroll = await box.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll[0] > scroll[1], scroll


async def test_the_dlq_offers_acting_on_all_entries_only_for_a_filter(ui: UI) -> None:
    dead = await ui.e2e.client.submit("flaky")
    await ui.e2e.wait_for([dead.id], lambda t: t.dead_lettered and t.status.is_terminal)

    await ui.open("dlq")
    await expect(ui.row(dead.id)).to_have_count(1)
    await expect(ui.page.get_by_label("Queue")).to_have_value("")  # "any queue"
    await expect(ui.button(re.compile("^(Resubmit|Delete) all"))).to_have_count(0)
    await expect(ui.page.locator(".toolbar")).to_contain_text("Choose a queue or a task name")

    await ui.page.get_by_label("Queue").select_option("default")
    await ui.button("Apply").click()
    await expect(ui.button("Resubmit all matching the filter")).to_be_visible()
    await expect(ui.button("Delete all matching the filter")).to_be_visible()
    await ui.button("Resubmit all matching the filter").click()
    await expect(ui.page.locator(".notice.ok")).to_contain_text("1 resubmitted")


async def test_pause_resume_and_clear_a_queue_and_see_priority_on_task_pages(ui: UI) -> None:
    page, c = ui.page, ui.e2e.client
    await ui.open("queues")
    await ui.button("Pause queue default").click()
    await expect(ui.row("default").locator("[data-paused]")).to_have_text("paused")
    urgent = await c.submit("noop", priority=42)
    later = await c.submit("noop", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    row = ui.row("default")
    await expect(row.locator("td").nth(3)).to_have_text("1")  # ready
    await expect(row.locator("td").nth(5)).to_have_text("1")  # scheduled
    await ui.shot("queues-paused")
    assert (await c.get(urgent.id)).status is TaskStatus.SUBMITTED  # the worker starts nothing

    await ui.button("Resume queue default").click()
    await expect(row.locator("[data-paused]")).to_have_count(0)
    await ui.e2e.wait_terminal([urgent.id])
    await expect(row.locator("td").nth(3)).to_have_text("0")
    await expect(row.locator("td").nth(8)).to_contain_text("1 /")  # completed in the last minute
    await ui.button("Clear queue default").click()
    await expect(page.locator(".notice.ok")).to_contain_text("1 waiting tasks cancelled")
    (cleared,) = await ui.e2e.wait_terminal([later.id])
    assert cleared.status is TaskStatus.CANCELLED

    await ui.open(f"task/{urgent.id}")
    await expect(page.locator('dd[data-field="priority"]')).to_have_text("42")
    await ui.open(f"task/{later.id}")
    await expect(page.locator('dd[data-field="cancel_reason"]')).to_have_text("queue default was cleared")
    await ui.open("tasks?queue=default")
    await expect(ui.row(urgent.id)).to_contain_text("42")

    # A task waiting for its concurrency key's slot says so, and the queue counts it as blocked.
    register_task("keyed_nap", concurrency_key="account:{account_id}")(keyed_nap)
    holder = await c.submit("keyed_nap", {"account_id": 3, "seconds": 3})
    waiter = await c.submit("keyed_nap", {"account_id": 3, "seconds": 0.1})
    await ui.open(f"task/{waiter.id}")
    await expect(page.locator('dd[data-field="concurrency_key"]')).to_have_text("account:3")
    await expect(page.locator('dd[data-field="waiting_for"]')).to_contain_text("account:3")
    await ui.open("queues")
    await expect(ui.row("default").locator("td").nth(4)).to_have_text("1")  # blocked
    await ui.shot("task-blocked")
    await ui.e2e.wait_terminal([holder.id, waiter.id])


async def test_create_edit_pause_and_delete_recurring_entries(ui: UI) -> None:
    page = ui.page
    await ui.open("recurring")
    await page.get_by_label("Key", exact=True).fill("nightly")
    await page.get_by_label("Task", exact=True).fill("nap")
    await page.get_by_label("Params (JSON object)").fill('{"seconds": 0.1}')
    await page.get_by_label("Cron", exact=True).fill("every night")
    await ui.button("Create entry").click()
    await expect(page.locator('[data-error-for="cron"]')).to_contain_text("not a cron expression")

    await page.get_by_label("Cron", exact=True).fill("0 3 * * *")
    await page.get_by_label("Timezone").fill("Europe/Paris")
    await ui.button("Create entry").click()
    row = page.locator('tr[data-key="nightly"]')
    await expect(row).to_contain_text("0 3 * * * (Europe/Paris)")
    await expect(row.locator("li")).to_have_count(3)  # the next fire times
    await ui.shot("recurring")

    await ui.button("Edit nightly").click()
    await page.get_by_label("Schedule").select_option("every")
    await page.get_by_label("Every (seconds)").fill("600")
    await ui.button("Save changes").click()
    await expect(row).to_contain_text("every 600 s")
    entry = await ui.e2e.config.get_recurring("nightly")
    assert entry is not None and entry.every_seconds == 600 and entry.cron is None and entry.params == {"seconds": 0.1}

    await ui.button("Pause nightly").click()
    await expect(row).to_contain_text("paused")
    assert (await ui.e2e.config.get_recurring("nightly")).paused  # type: ignore[union-attr]
    await ui.button("Resume nightly").click()
    await expect(row.locator("li")).to_have_count(3)

    await row.get_by_role("link", name="Tasks").click()
    await expect(page.get_by_label("Recurring entry")).to_have_value("nightly")
    await ui.open("recurring")
    await ui.button("Delete nightly").click()
    await expect(page.locator('tr[data-key="nightly"]')).to_have_count(0)
    assert await ui.e2e.config.get_recurring("nightly") is None
