"""Firing recurring entries: each (entry, fire time) is submitted exactly once.

The task a fire time submits has an id derived from the entry's key and the fire time
(``jobbers.recurring.recurring_task_id``), and a submit of an id that exists is a no-op, so
several schedulers firing the same entry, or one restarted after being killed between the submit
and recording the fire time, submit it once. After downtime a missed schedule fires once (its
latest fire time), or every missed time (at most 1,000) when the entry asks for ``catch_up``.

An entry with a workflow fires one run per fire time, its id (and its nodes' task ids) derived the
same way, so it too is submitted once. With ``skip_if_running``, a fire time that finds the entry's
previous run still running submits nothing and is recorded as fired (see
``jobbers.state.workflows.submit_recurring_workflow``: the check and the submit are one script).
A workflow that can no longer be built (a node's queue was deleted, its params no longer fit)
is logged and its fire time recorded, so it is not retried every pass.
"""

from __future__ import annotations

import logging
import math
import time

from jobbers.config_store import SQL_UNAVAILABLE_ERRORS, ConfigStore
from jobbers.models.recurring import RecurringEntry, due_fire_times, next_fire_times
from jobbers.recurring_entries import recurring_node_task_id, recurring_task_id
from jobbers.state.store import TaskStore
from jobbers.state.workflows import submit_recurring_workflow
from jobbers.task_builder import build_new_task
from jobbers.worker import fault_hooks
from jobbers.workflow_nodes import WorkflowProblems, build_nodes, node_spec

log = logging.getLogger("jobbers.scheduler")


class RecurringFirer:
    """Submits what recurring entries have due; reads the entries from SQL at most every ``refresh`` s."""

    def __init__(self, store: TaskStore, config: ConfigStore, refresh: float = 1.0) -> None:
        self.store = store
        self.config = config
        self.refresh = refresh
        self._entries: list[RecurringEntry] = []
        self._read_at = -math.inf

    async def fire_due(self) -> float:
        """Submit every due fire time; returns the seconds until the next one (inf when none)."""
        entries = await self._current_entries()
        if not entries:
            return math.inf
        now = await self.store.redis_time_ms()
        until_next = math.inf
        for i, entry in enumerate(entries):
            if entry.paused:
                continue
            due = due_fire_times(entry, now)
            if due:
                await self._fire(entry, due)
                entry = entries[i] = entry.with_changes(last_fire_ms=due[-1])
            upcoming = next_fire_times(entry, now, 1)
            if upcoming:
                until_next = min(until_next, (upcoming[0] - now) / 1000)
        return max(until_next, 0.0)

    async def _fire(self, entry: RecurringEntry, fire_times: list[int]) -> None:
        if entry.workflow is not None:
            created = 0
            for at in fire_times:
                created += await self._fire_workflow(entry, at)
            await self._record(entry, fire_times, created)
            return
        tasks = [
            build_new_task(
                None,
                entry.task_name,
                dict(entry.params),
                version=entry.task_version,
                queue=entry.queue,
                task_id=recurring_task_id(entry.key, at),
                priority=entry.priority,
                recurring_key=entry.key,
                recurring_at_ms=at,
            )
            for at in fire_times
        ]
        outcomes = await self.store.submit_many(tasks)
        created = sum(1 for o in outcomes if o.created)
        await self._record(entry, fire_times, created)

    async def _fire_workflow(self, entry: RecurringEntry, at: int) -> int:
        """Submit the run of ``entry`` for fire time ``at``; 1 when it was created, else 0."""
        assert entry.workflow is not None
        workflow_id = recurring_task_id(entry.key, at)
        specs = [node_spec({**n, "queue": entry.queue}) for n in entry.workflow.get("nodes", [])]
        try:
            nodes = await build_nodes(
                workflow_id,
                specs,
                require_registered=False,
                recurring_key=entry.key,
                recurring_at_ms=at,
                task_id_of=lambda node: recurring_node_task_id(entry.key, at, node),
            )
        except WorkflowProblems as exc:
            log.error("recurring %s: its workflow cannot run (%s); fire time skipped", entry.key, exc)
            return 0
        name = str(entry.workflow.get("name") or entry.key)
        fired = await submit_recurring_workflow(
            self.store, workflow_id, name, nodes, entry.key, entry.skip_if_running
        )
        if fired.skipped:
            log.info("recurring %s: skipped, its run %s is still running", entry.key, fired.running)
        return int(fired.created)

    async def _record(self, entry: RecurringEntry, fire_times: list[int], created: int) -> None:
        if fault_hooks.EXIT_AFTER_RECURRING_SUBMIT and created:
            fault_hooks.exit_abruptly()
        try:
            await self.config.record_fired(entry.key, fire_times[-1])
        except SQL_UNAVAILABLE_ERRORS as exc:
            # The next pass submits the same ids again, which is a no-op.
            log.warning("recurring %s: could not record its fire time (%s)", entry.key, exc)
        if created:
            log.info(
                "recurring %s: submitted %d %s to queue %s",
                entry.key,
                created,
                "workflow run(s)" if entry.workflow is not None else f"{entry.task_name} task(s)",
                entry.queue,
            )

    async def _current_entries(self) -> list[RecurringEntry]:
        now = time.monotonic()
        if now - self._read_at >= self.refresh:
            try:
                self._entries = await self.config.list_recurring()
                self._read_at = now
            except SQL_UNAVAILABLE_ERRORS as exc:
                log.warning("could not read recurring entries (%s); keeping the last ones read", exc)
        return self._entries
