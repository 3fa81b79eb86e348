"""The admin UI's event log pieces in a real browser (see tests/test_ui.py for the set-up): a task's
event timeline and progress bar, the Audit page with its filters and summary, and the task list's
correlation id filter."""

from __future__ import annotations

import re

from jobbers.models.task import TaskStatus
from tests.test_ui import UI, expect, playwright, ui

__all__ = ["playwright", "ui"]  # fixtures used by this module


async def test_the_task_page_shows_its_progress_bar_and_event_timeline(ui: UI) -> None:
    task = await ui.e2e.client.submit("progress_steps", {"steps": 5, "pause": 1.0}, correlation_id="ui-session")
    await ui.open(f"task/{task.id}")
    progress = ui.page.locator('dd[data-field="progress"]')
    await expect(progress.locator("progress")).to_be_visible()
    await expect(progress).to_contain_text(re.compile(r"[1-5] / 5 \(\d+%\) · step [1-5]"))
    timeline = ui.page.locator("ol.events")
    await expect(timeline.locator('li[data-event="started"]')).to_have_count(1)
    await expect(timeline.locator('li[data-event="progress"]')).to_have_count(1)
    await ui.shot("task-progress")
    await expect(ui.page.locator("h1 .live-status")).to_have_text("completed", timeout=20_000)
    await expect(timeline.locator('li[data-event="completed"]')).to_have_count(1)
    await expect(timeline.locator("li").first).to_contain_text("submitted")
    await expect(ui.page.locator('dd[data-field="correlation_id"] a')).to_have_text("ui-session")
    await ui.shot("task-events")


async def test_the_audit_page_filters_and_counts_the_events(ui: UI) -> None:
    c = ui.e2e.client
    mine = [await c.submit("noop", correlation_id="agent-a") for _ in range(2)]
    flaky = await c.submit("flaky", correlation_id="agent-b")
    await ui.e2e.wait_for([t.id for t in mine], lambda t: t.status is TaskStatus.COMPLETED)
    await ui.e2e.wait_for([flaky.id], lambda t: t.status.is_terminal)

    await ui.open("audit")
    await expect(ui.page.locator("main h1")).to_have_text("Audit log")
    rows = ui.page.locator("tr[data-event-id]")
    await expect(rows).to_have_count(15)  # noop: 3 events each; flaky: 3 attempts, 2 promotions
    await ui.page.get_by_label("Correlation id").fill("agent-a")
    await ui.button("Apply").click()
    await expect(rows).to_have_count(6)
    await expect(ui.page.locator('tr[data-type="completed"]')).to_have_count(2)
    summary = ui.page.locator(".audit-summary")
    await expect(summary).to_contain_text("6 events")
    await expect(summary.locator('tr[data-task-name="noop"]')).to_contain_text("6")
    await ui.shot("audit")

    await ui.page.get_by_label("Correlation id").fill("")
    await ui.page.locator('input[name="type"][value="failed"]').check()
    await ui.button("Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("ConnectionError: upstream timed out")
    await rows.first.get_by_role("link", name=flaky.id).click()
    await expect(ui.page.locator("h1 .live-status")).to_have_text("failed")

    await ui.open("audit?task_name=noop&type=started&limit=50")
    await expect(rows).to_have_count(2)
    await ui.open("audit?window=custom&since=2001-01-01T00:00&until=2001-01-02T00:00")
    await expect(ui.page.locator(".audit-summary")).to_contain_text("0 events")
    await expect(ui.page.locator("td.empty").last).to_have_text("No events match.")


async def test_the_task_list_filters_by_correlation_id(ui: UI) -> None:
    c = ui.e2e.client
    grouped = [await c.submit("noop", correlation_id="batch-7") for _ in range(3)]
    await c.submit("noop", correlation_id="batch-8")
    await ui.e2e.wait_for([t.id for t in grouped], lambda t: t.status.is_terminal)
    await ui.open("tasks")
    await ui.page.get_by_label("Correlation id").fill("batch-7")
    await ui.button("Apply").click()
    await expect(ui.page).to_have_url(re.compile(r"correlation_id=batch-7"))
    await expect(ui.page.locator("tbody tr[data-id]")).to_have_count(3)
    for t in grouped:
        await expect(ui.row(t.id)).to_be_visible()
