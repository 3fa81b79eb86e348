"""Workflow runs through real worker processes: dynamic fan-out from a running task."""

from __future__ import annotations

from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.workflows import chain, signature
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state


async def test_a_running_task_fans_out_and_what_came_after_it_waits_for_the_collector(e2e: E2E) -> None:
    e2e.platform.worker()
    run = await e2e.client.submit_workflow(
        chain(signature("wf_fan", pages=3).named("fan"), signature("wf_sum").results("parts").named("total"))
    )

    async def ended() -> bool:
        found = await e2e.client.get_workflow(run.id)
        return found is not None and found.status is not WorkflowStatus.RUNNING

    await wait_until(ended, 30)
    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    by_node = {n.node: n for n in done.nodes}
    assert set(by_node) == {"fan", "total", "fan.wf_page", "fan.wf_page-2", "fan.wf_page-3", "fan.wf_sum"}
    assert by_node["total"].after == ("fan.wf_sum",)
    tasks = {n.node: await e2e.store.get_task(n.task_id) for n in done.nodes}
    assert tasks["fan.wf_sum"].result == 30 and tasks["total"].result == 30  # type: ignore[union-attr]
    assert {t.status for t in tasks.values() if t} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, [n.task_id for n in done.nodes])
