"""Recurring entries that fire a workflow run: over REST (validated as POST /workflows is, naming
the node), fired once per fire time by several schedulers, ``skip_if_running`` checked and
written in one script, real scheduler and worker processes, and the SQL migration of revision
0004 on a database of revision 0003 with its entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from jobbers.config_store import ConfigStore, schema
from jobbers.errors import TaskRegistrationError
from jobbers.models.queue_config import QueueConfig
from jobbers.models.recurring import RecurringEntry
from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.recurring_entries import recurring, recurring_node_task_id, recurring_task_id
from jobbers.scheduler.recurring import RecurringFirer
from jobbers.settings import Settings
from jobbers.state.store import Outcome, TaskStore
from jobbers.state.workflows import get_workflow, list_workflows
from jobbers.workflows import chain, signature
from tests.e2e import E2E, wait_until
from tests.manager_support import registered, running
from tests.redis_server import RedisServer
from tests.test_manager_config import config_url

__all__ = ["config_url", "registered"]  # fixtures used here

from jobbers.manager.app import create_app

DEFAULT = [QueueConfig(name="default")]


def _nodes() -> list[dict[str, Any]]:
    return [
        {"id": "a", "name": "add", "params": {"a": 1}},
        {"id": "b", "name": "add", "params": {"a": 2}, "after": ["a"]},
        {"id": "sum", "name": "anything", "after": ["a", "b"], "results_param": "parents"},
    ]


def _workflow_entry(key: str, every: float, created_at_ms: int, **changes: Any) -> RecurringEntry:
    nodes = [{**n, "queue": "default"} for n in _nodes()]
    return RecurringEntry(
        key=key, task_name="", every_seconds=every, created_at_ms=created_at_ms,
        workflow={"name": f"{key} run", "nodes": nodes}, **changes,
    )  # fmt: skip


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
async def api(
    redis_server: RedisServer, key_prefix: str, config_url: str, registered: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=config_url)
    async for client in running(create_app(settings)):
        yield client


async def test_a_workflow_entry_over_rest_is_created_shown_and_changed(api: httpx.AsyncClient) -> None:
    body = {"key": "etl", "workflow": {"name": "nightly", "nodes": _nodes()}, "cron": "0 2 * * *",
            "skip_if_running": True}  # fmt: skip

    created = await api.post("/recurring", json=body)

    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["task_name"] is None and entry["skip_if_running"] is True
    assert entry["workflow"]["name"] == "nightly"
    assert [n["id"] for n in entry["workflow"]["nodes"]] == ["a", "b", "sum"]
    assert {n["queue"] for n in entry["workflow"]["nodes"]} == {"default"}  # the entry's queue
    assert (await api.get("/recurring/etl")).json() == {**entry, "next_runs": entry["next_runs"]}
    # PUT turns it into a task entry and back.
    as_task = await api.put("/recurring/etl", json={"task_name": "add", "params": {"a": 1}, "every": 60})
    assert as_task.status_code == 200 and as_task.json()["workflow"] is None
    assert as_task.json()["skip_if_running"] is False
    back = await api.put("/recurring/etl", json={"workflow": {"nodes": _nodes()}, "every": 60})
    assert back.status_code == 200 and back.json()["workflow"]["name"] == ""


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"workflow": {"nodes": [{"id": "a", "name": "nope"}]}}, ["body", "workflow", "nodes", 0, "name"]),
        ({"workflow": {"nodes": [{"id": "a", "name": "add", "params": {"a": 1}},
                                 {"id": "b", "name": "add", "params": {"zz": 1}}]}},
         ["body", "workflow", "nodes", 1, "params"]),
        ({"workflow": {"nodes": [{"id": "a", "name": "anything", "after": ["b"]},
                                 {"id": "b", "name": "anything", "after": ["a"]}]}},
         ["body", "workflow", "nodes", 0, "after"]),  # a cycle
        ({"workflow": {"nodes": [{"id": "a", "name": "anything", "on_error_of": ["x"]}]}},
         ["body", "workflow", "nodes", 0, "on_error_of"]),
        ({"workflow": {"nodes": [{"id": "a", "name": "anything", "queue": "other"}]}},
         ["body", "workflow", "nodes", 0, "queue"]),
        ({"task_name": "add", "params": {"a": 1}}, ["body", "workflow"]),  # a task and a workflow
        ({"params": {"a": 1}}, ["body", "params"]),  # a workflow's params are its nodes'
        ({"catch_up": True}, ["body", "skip_if_running"]),
        ({"workflow": {"nodes": [{"id": "a", "name": "anything", "zz": 1}]}},
         ["body", "workflow", "nodes", 0, "zz"]),  # a typo is refused, never dropped
    ],
)  # fmt: skip
async def test_an_invalid_workflow_entry_is_a_422_naming_the_node_and_field(
    api: httpx.AsyncClient, change: dict[str, Any], loc: list[Any]
) -> None:
    body = {"key": "k", "workflow": {"nodes": _nodes()}, "every": 60, "skip_if_running": True, **change}

    response = await api.post("/recurring", json=body)

    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]], response.text
    assert (await api.get("/recurring")).json() == []


async def test_neither_a_task_nor_a_workflow_or_skip_if_running_on_a_task_is_a_422(
    api: httpx.AsyncClient,
) -> None:
    neither = await api.post("/recurring", json={"key": "k", "every": 60})
    task_skip = await api.post(
        "/recurring", json={"key": "k", "task_name": "add", "params": {"a": 1}, "every": 60,
                            "skip_if_running": True},
    )  # fmt: skip

    assert neither.status_code == 422 and ["body", "task_name"] in [
        e["loc"] for e in neither.json()["detail"]
    ]
    assert task_skip.status_code == 422
    assert ["body", "skip_if_running"] in [e["loc"] for e in task_skip.json()["detail"]]


def test_a_declared_workflow_entry_and_what_it_refuses() -> None:
    run = chain(signature("extract", day=1), signature("load"))
    entry = recurring("etl", workflow=run, every=3600, skip_if_running=True, queue="reports")
    assert entry.task_name == "" and entry.workflow is not None and entry.workflow["name"] == "etl"
    assert [(n["id"], n["queue"], n["after"]) for n in entry.workflow["nodes"]] == [
        ("extract", "reports", []), ("load", "reports", ["extract"])
    ]  # fmt: skip
    with pytest.raises(TaskRegistrationError, match="exactly one"):
        recurring("both", "extract", workflow=run, every=60)
    with pytest.raises(TaskRegistrationError, match="skip_if_running"):
        recurring("task-skip", "extract", every=60, skip_if_running=True)
    with pytest.raises(TaskRegistrationError, match="catch_up"):
        recurring("catching", workflow=run, every=60, skip_if_running=True, catch_up=True)


# -- firing -------------------------------------------------------------------------------------


@pytest.fixture
async def sql(sqlite_url: str) -> AsyncIterator[ConfigStore]:
    config = ConfigStore(sqlite_url)
    await config.migrate()
    yield config
    await config.close()


async def test_two_firers_submit_one_run_per_fire_time_with_derived_ids(
    store: TaskStore, sql: ConfigStore
) -> None:
    now = await store.redis_time_ms()
    await sql.save_recurring(_workflow_entry("etl", 10, now - 55_000))
    firers = [RecurringFirer(store, sql, refresh=0), RecurringFirer(store, sql, refresh=0)]

    await asyncio.gather(*(f.fire_due() for f in firers), *(f.fire_due() for f in firers))

    fire = now - 5_000
    runs = (await list_workflows(store)).runs
    assert [r.id for r in runs] == [recurring_task_id("etl", fire)]  # five missed: the latest, once
    run = await get_workflow(store, runs[0].id)
    assert run is not None and run.name == "etl run" and run.status is WorkflowStatus.RUNNING
    by_node = {n.node: n for n in run.nodes}
    assert by_node["a"].task_id == recurring_node_task_id("etl", fire, "a")
    a = await store.get_task(by_node["a"].task_id)
    assert a is not None and a.recurring_key == "etl" and a.workflow_node == "a"
    assert a.recurring_at == dt.datetime.fromtimestamp(fire / 1000, dt.UTC)
    assert await store.queue_depth("default") == 1  # only its first node is ready
    assert (await sql.get_recurring("etl")).last_fire_ms == fire  # type: ignore[union-attr]
    # Nothing strays: every task the run's nodes name exists, and no other was made.
    assert len(await store.get_tasks([n.task_id for n in run.nodes if n.status is not None])) == 1


async def _finish_all(store: TaskStore) -> None:
    while claimed := (await store.claim("w", 30, 100, DEFAULT)).tasks:
        await store.finish([Outcome(t.id, t.token, TaskStatus.COMPLETED) for t in claimed])


async def test_skip_if_running_skips_fire_times_while_the_last_run_runs(
    store: TaskStore, sql: ConfigStore
) -> None:
    now = await store.redis_time_ms()
    await sql.save_recurring(_workflow_entry("skips", 1, now - 1_500, skip_if_running=True))
    await sql.save_recurring(_workflow_entry("overlaps", 1, now - 1_500))
    firers = [RecurringFirer(store, sql, refresh=0), RecurringFirer(store, sql, refresh=0)]

    async def fire_next() -> None:
        """Every firer, at once, after the next fire time."""
        await asyncio.sleep(1.05)
        await asyncio.gather(*(f.fire_due() for f in firers))

    await asyncio.gather(*(f.fire_due() for f in firers))
    await fire_next()
    await fire_next()

    def runs_of(key: str, runs: list[Any]) -> list[Any]:
        return [r for r in runs if r.name == f"{key} run"]

    runs = (await list_workflows(store)).runs
    (first,) = runs_of("skips", runs)
    assert len(runs_of("overlaps", runs)) == 3  # one per fire time, side by side
    skipped = await sql.get_recurring("skips")
    assert skipped is not None and skipped.last_fire_ms is not None and skipped.last_fire_ms >= now + 1_000
    # Skipped fire times made nothing: no run, no task, no locator entry.
    never = recurring_task_id("skips", skipped.last_fire_ms)
    assert await get_workflow(store, never) is None
    assert not await store.redis.hexists(store.keys.workflows, never)  # type: ignore[misc]
    assert (await store.locate([recurring_node_task_id("skips", skipped.last_fire_ms, "a")])) == {}

    await _finish_all(store)  # every run ends
    await fire_next()

    runs = (await list_workflows(store)).runs
    second = [r for r in runs_of("skips", runs) if r.id != first.id]
    assert len(second) == 1 and second[0].status is WorkflowStatus.RUNNING
    assert (await get_workflow(store, first.id)).status is WorkflowStatus.COMPLETED  # type: ignore[union-attr]


# -- real processes -----------------------------------------------------------------------------


async def test_real_scheduler_and_worker_fire_runs_that_never_overlap_with_skip_if_running(e2e: E2E) -> None:
    """An every-second entry whose run lasts about 2.5 s: with skip_if_running its runs follow one
    another; without it they overlap. Each run's nodes all complete, each once."""
    run = chain(signature("nap", seconds=2.5).named("long"), signature("noop").named("after"))
    await e2e.client.set_recurring("serial", workflow=run, every=1, skip_if_running=True)
    await e2e.client.set_recurring("parallel", workflow=run, every=1)
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="20")
    e2e.platform.scheduler()

    async def runs(key: str) -> list[Any]:
        return [r for r in (await list_workflows(e2e.store)).runs if r.name == key]

    async def enough() -> bool:
        serial = await runs("serial")
        return len(serial) >= 3 and sum(r.status is WorkflowStatus.COMPLETED for r in serial) >= 2

    await wait_until(enough, 40)
    await e2e.client.pause_recurring("serial")
    await e2e.client.pause_recurring("parallel")
    await wait_until(lambda: all_ended(e2e), 30)

    serial = sorted(await runs("serial"), key=lambda r: r.created_at)
    parallel = sorted(await runs("parallel"), key=lambda r: r.created_at)
    assert all(r.status is WorkflowStatus.COMPLETED for r in serial + parallel)
    for earlier, later in itertools.pairwise(serial):
        assert later.created_at >= earlier.completed_at, (earlier, later)  # never side by side
    assert any(
        later.created_at < earlier.completed_at for earlier, later in itertools.pairwise(parallel)
    )  # without skip_if_running they overlap
    assert len(parallel) > len(serial)
    for r in serial + parallel:
        full = await e2e.client.get_workflow(r.id)
        assert full is not None and {n.status for n in full.nodes} == {TaskStatus.COMPLETED}
        nodes = await e2e.store.get_tasks([n.task_id for n in full.nodes])
        assert {t.recurring_key for t in nodes} == {r.name}
    naps = [task_id for task_id, label in e2e.platform.runs() if label == "nap"]
    assert len(naps) == len(set(naps)) == len(serial) + len(parallel)  # each run's nap ran once


async def all_ended(e2e: E2E) -> bool:
    return all(r.status is not WorkflowStatus.RUNNING for r in (await list_workflows(e2e.store)).runs)


# -- the migration ------------------------------------------------------------------------------


async def test_a_database_of_revision_0003_gets_workflow_entries_and_keeps_its_entries(
    config_url: str,
) -> None:
    engine = create_async_engine(config_url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: schema.upgrade(c, "0003"))
        await conn.execute(text("INSERT INTO jobbers_queues (name, rate_denominator, rate_period)"
                                " VALUES ('default', 1, 'second')"))  # fmt: skip
        await conn.execute(text(
            "INSERT INTO jobbers_recurring (key, task_name, task_version, params, queue, priority,"
            " description, cron, timezone, every_seconds, catch_up, paused, static, created_at_ms,"
            " last_fire_ms) VALUES"
            " ('old', 'add', 1, '{\"a\": 1}', 'default', 3, '', NULL, NULL, 60, false, true, false,"
            " 1000, 2000)"
        ))  # fmt: skip
    await engine.dispose()

    config = ConfigStore(config_url)
    try:
        await config.migrate()
        async with config.engine.connect() as conn:
            revision = await conn.run_sync(schema.current_revision)
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("jobbers_recurring"))
        old = await config.get_recurring("old")
        await config.save_recurring(_workflow_entry("new", 60, 5000, skip_if_running=True))
        new = await config.get_recurring("new")
    finally:
        await config.close()

    assert revision == schema.HEAD_REVISION == "0004"
    assert {"workflow", "skip_if_running"} <= {c["name"] for c in columns}
    assert old == RecurringEntry(
        key="old", task_name="add", params={"a": 1}, priority=3, every_seconds=60, paused=True,
        created_at_ms=1000, last_fire_ms=2000,
    )  # fmt: skip
    assert new is not None and new.skip_if_running and new.workflow == _workflow_entry("new", 60, 0).workflow
