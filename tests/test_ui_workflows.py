"""The admin UI's Workflows pages in a real browser (see tests/test_ui.py for the set-up): submit a
run from JSON, watch its graph follow the run, click through to a node's task, cancel a run."""

from __future__ import annotations

import json
import re

from jobbers.models.workflow import WorkflowStatus
from jobbers.workflows import signature
from tests.test_ui import UI, expect, playwright, ui

__all__ = ["playwright", "ui"]  # fixtures used by this module


def _node(node_id: str, **fields: object) -> dict[str, object]:
    return {"id": node_id, "name": "wf_step", "params": {"node": node_id}, **fields}


def drawn(ui: UI, node: str) -> object:
    """The node's box in the run's graph."""
    return ui.page.locator(f'svg.wf-graph a.wf-node[data-node="{node}"]')


DIAMOND = {
    "name": "diamond",
    "nodes": [
        _node("a"),
        _node("b", after=["a"]),
        _node("c", after=["a"]),
        _node("d", after=["b", "c"], results_param="parents"),
        _node("alert", on_error_of=["d"]),
    ],
}


async def test_submit_a_workflow_from_json_and_follow_its_graph_to_a_task(ui: UI) -> None:
    await ui.open("workflows")
    await expect(ui.page.locator("main h1")).to_have_text("Workflows")
    graph = ui.page.locator("textarea[name=graph]")
    broken = {"nodes": [_node("a"), {"id": "b", "name": "nope", "after": ["a"]}]}
    await graph.fill(json.dumps(broken))
    await ui.button("Submit workflow").click()
    await expect(ui.page.locator("ul.errors")).to_contain_text("nodes.1.name: node 'b': no task 'nope'")
    await graph.fill(json.dumps(DIAMOND))
    await ui.shot("workflow-submit")
    await ui.button("Submit workflow").click()

    await ui.page.wait_for_url(re.compile(r"#/workflow/"))
    run_id = ui.page.url.rsplit("/", 1)[1]
    await expect(ui.page.locator("svg.wf-graph a.wf-node")).to_have_count(5)
    await expect(ui.page.locator('svg.wf-graph path[data-kind="error"]')).to_have_count(1)
    await expect(ui.page.locator("h1 .live-status")).to_have_text("completed")  # polled, no reload
    await expect(drawn(ui, "d")).to_have_attribute("data-status", "completed")
    await expect(drawn(ui, "alert")).to_have_attribute("data-status", "cancelled")
    # Columns by depth: a, then b and c side by side, then d after both.
    xs = {}
    for node in "abcd":
        box = await drawn(ui, node).locator("rect").bounding_box()
        xs[node] = box["x"]
    assert xs["a"] < xs["b"] == xs["c"] < xs["d"], xs
    await ui.shot("workflow")

    run = await ui.e2e.client.get_workflow(run_id)
    assert run is not None and run.status is WorkflowStatus.COMPLETED
    d = next(n for n in run.nodes if n.node == "d")
    await drawn(ui, "d").click()
    await ui.page.wait_for_url(re.compile(rf"#/task/{d.task_id}$"))
    await expect(ui.page.locator("h1 .live-status")).to_have_text("completed")

    await ui.open("workflows")
    await expect(ui.row(run_id)).to_contain_text("completed")
    await expect(ui.row(run_id)).to_contain_text("diamond")
    await ui.shot("workflows")


async def test_cancel_a_running_workflow_from_its_page(ui: UI) -> None:
    run = await ui.e2e.client.submit_workflow(
        signature("nap", seconds=30).named("slow").then(signature("noop").named("after")), name="slow"
    )
    await ui.e2e.wait_started([next(n.task_id for n in run.nodes if n.node == "slow")])

    await ui.open(f"workflow/{run.id}")
    await expect(drawn(ui, "slow")).to_have_attribute("data-status", "started")
    await expect(drawn(ui, "after")).to_have_attribute("data-status", "waiting")
    await ui.button("Cancel run").click()
    await expect(ui.page.locator("h1 .live-status")).to_have_text("cancelled")
    await expect(ui.button("Cancel run")).to_be_hidden()
    await expect(drawn(ui, "after")).to_have_attribute("data-status", "cancelled")
