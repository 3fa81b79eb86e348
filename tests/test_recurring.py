"""Recurring entries: schedules, the /recurring API, static declarations, firing exactly once
by real scheduler processes (two at once, one killed between submitting and recording), and the
versioned SQL migrations that bring the table to databases created before it existed."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, insert, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from jobbers.config_store import ConfigStore, schema
from jobbers.models.recurring import (
    RecurringEntry,
    ScheduleError,
    check_schedule,
    due_fire_times,
    next_fire_times,
)
from jobbers.models.task import TaskStatus
from jobbers.recurring_entries import declared_recurring, recurring, recurring_task_id
from jobbers.registry import register_task
from jobbers.scheduler.recurring import RecurringFirer
from jobbers.settings import Settings
from jobbers.state.store import TaskStore
from tests.e2e import E2E, wait_until
from tests.manager_support import registered, running
from tests.redis_server import RedisServer
from tests.test_manager_config import config_url

__all__ = ["config_url", "registered"]  # fixtures used here

from jobbers.manager.app import create_app

MINUTE = 60_000
T0 = 1_796_251_200_000  # 2026-12-02T20:00:00Z, a whole hour


# -- schedules ----------------------------------------------------------------------------------


def test_cron_and_interval_schedules_give_their_fire_times() -> None:
    every5 = RecurringEntry(key="k", task_name="t", cron="*/5 * * * *", created_at_ms=T0)
    assert next_fire_times(every5, T0 + 1, 3) == [T0 + 5 * MINUTE, T0 + 10 * MINUTE, T0 + 15 * MINUTE]
    seconds = RecurringEntry(key="k", task_name="t", cron="*/20 * * * * *", created_at_ms=T0)  # seconds first
    assert next_fire_times(seconds, T0, 2) == [T0 + 20_000, T0 + 40_000]
    # 09:00 in Paris is 08:00 UTC in winter.
    paris = RecurringEntry(
        key="k", task_name="t", cron="0 9 * * *", timezone="Europe/Paris", created_at_ms=T0
    )
    (first,) = next_fire_times(paris, T0, 1)
    assert dt.datetime.fromtimestamp(first / 1000, dt.UTC) == dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
    interval = RecurringEntry(key="k", task_name="t", every_seconds=90, created_at_ms=T0)
    assert next_fire_times(interval, T0 + 100_000, 2) == [T0 + 180_000, T0 + 270_000]


def test_a_missed_schedule_fires_once_unless_the_entry_catches_up() -> None:
    entry = RecurringEntry(key="k", task_name="t", cron="* * * * *", created_at_ms=T0, last_fire_ms=T0)
    assert due_fire_times(entry, T0 + 59_999) == []
    assert due_fire_times(entry, T0 + 10 * MINUTE + 5) == [T0 + 10 * MINUTE]  # ten missed: the latest
    catching = entry.with_changes(catch_up=True)
    assert due_fire_times(catching, T0 + 10 * MINUTE + 5) == [T0 + k * MINUTE for k in range(1, 11)]
    day = RecurringEntry(key="k", task_name="t", every_seconds=1, created_at_ms=T0, catch_up=True)
    due = due_fire_times(day, T0 + 86_400_000)  # a day of one-second ticks: the latest 1,000
    assert len(due) == 1000 and due[-1] == T0 + 86_400_000 and due[0] == T0 + 85_401_000


@pytest.mark.parametrize(
    ("cron", "timezone", "every", "field"),
    [
        ("every minute", None, None, "cron"),
        ("* * * *", None, None, "cron"),
        ("61 * * * *", None, None, "cron"),
        ("* * * * *", "Mars/Olympus", None, "timezone"),
        (None, None, 0.5, "every"),
        (None, None, None, "cron"),
        ("* * * * *", None, 60, "cron"),
        (None, "UTC", 60, "timezone"),
    ],
)
def test_an_invalid_schedule_says_which_part(
    cron: str | None, timezone: str | None, every: float | None, field: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_schedule(cron, timezone, every)
    assert caught.value.field_name == field


def test_fire_ids_are_ulids_of_the_fire_time_the_same_for_every_scheduler() -> None:
    a, b = recurring_task_id("nightly", T0), recurring_task_id("nightly", T0)
    assert a == b != recurring_task_id("nightly", T0 + 1) != recurring_task_id("other", T0)
    from ulid import ULID

    assert ULID.from_str(a).milliseconds == T0


def test_static_declarations_register_next_to_their_task() -> None:
    @register_task("report", schedule="0 3 * * *", schedule_timezone="Europe/Paris")
    async def report() -> None: ...

    recurring("cleanup-often", "cleanup", every=600, params={"days": 7}, priority=-5, description="d")
    keys = {e.key: e for e in declared_recurring()}
    assert keys["report"].cron == "0 3 * * *" and keys["report"].timezone == "Europe/Paris"
    assert keys["cleanup-often"].params == {"days": 7} and keys["cleanup-often"].static
    from jobbers.errors import TaskRegistrationError

    with pytest.raises(TaskRegistrationError, match="not a cron expression"):
        recurring("bad", "cleanup", cron="every day")


# -- firing -------------------------------------------------------------------------------------


@pytest.fixture
async def sql(sqlite_url: str) -> AsyncIterator[ConfigStore]:
    config = ConfigStore(sqlite_url)
    await config.migrate()
    yield config
    await config.close()


async def test_two_firers_submit_each_fire_time_once_with_its_key_time_and_priority(
    store: TaskStore, sql: ConfigStore
) -> None:
    now = await store.redis_time_ms()
    entry = RecurringEntry(
        key="tick", task_name="noop", params={"n": 1}, priority=7, every_seconds=10,
        created_at_ms=now - 55_000,
    )
    await sql.save_recurring(entry)
    firers = [RecurringFirer(store, sql, refresh=0), RecurringFirer(store, sql, refresh=0)]

    waits = await asyncio.gather(*(f.fire_due() for f in firers), *(f.fire_due() for f in firers))

    fire = now - 5_000
    task = await store.get_task(recurring_task_id("tick", fire))
    assert (
        task is not None and task.recurring_key == "tick" and task.priority == 7 and task.params == {"n": 1}
    )
    assert task.recurring_at == dt.datetime.fromtimestamp(fire / 1000, dt.UTC)
    assert await store.queue_depth("default") == 1  # five missed ticks: the latest, once
    assert (await sql.get_recurring("tick")).last_fire_ms == fire  # type: ignore[union-attr]
    assert all(0 <= w <= 10.0 for w in waits)


async def test_a_paused_entry_does_not_fire_and_resumes_from_its_next_time(
    store: TaskStore, sql: ConfigStore
) -> None:
    from jobbers.recurring_entries import set_recurring_paused

    now = await store.redis_time_ms()
    await sql.save_recurring(
        RecurringEntry(key="p", task_name="noop", every_seconds=1, created_at_ms=now - 3_000)
    )
    await set_recurring_paused(sql, "p", True)
    firer = RecurringFirer(store, sql, refresh=0)
    await firer.fire_due()
    assert await store.queue_depth("default") == 0
    await set_recurring_paused(sql, "p", False)  # what was missed while paused is skipped
    await firer.fire_due()
    assert await store.queue_depth("default") == 0


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
async def api(
    redis_server: RedisServer, key_prefix: str, config_url: str, registered: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=config_url)
    async for client in running(create_app(settings)):
        yield client


async def test_recurring_entries_over_rest_create_list_change_pause_and_delete(
    api: httpx.AsyncClient,
) -> None:
    body = {
        "key": "sum-nightly",
        "task_name": "add",
        "params": {"a": 1},
        "cron": "0 3 * * *",
        "timezone": "UTC",
    }

    created = await api.post("/recurring", json=body)
    again = await api.post("/recurring", json=body)
    listed = await api.get("/recurring")

    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["next_runs"][0].endswith("T03:00:00Z") and len(entry["next_runs"]) == 5
    assert entry["paused"] is False and entry["static"] is False and entry["last_fired_at"] is None
    assert again.status_code == 409
    assert [e["key"] for e in listed.json()] == ["sum-nightly"]

    changed = await api.put(
        "/recurring/sum-nightly", json={"task_name": "add", "params": {"a": 2}, "every": 3600}
    )
    assert changed.status_code == 200 and changed.json()["every"] == 3600 and changed.json()["cron"] is None
    assert changed.json()["created_at"] == entry["created_at"]
    made = await api.put("/recurring/other", json={"task_name": "anything", "every": 60, "queue": "default"})
    assert made.status_code == 201

    paused = await api.post("/recurring/sum-nightly/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_runs"] == []
    resumed = await api.post("/recurring/sum-nightly/resume")
    assert resumed.json()["paused"] is False and resumed.json()["next_runs"]

    assert (await api.delete("/recurring/sum-nightly")).status_code == 204
    assert (await api.get("/recurring/sum-nightly")).status_code == 404
    assert (await api.delete("/recurring/sum-nightly")).status_code == 404
    assert (await api.post("/recurring/nope/pause")).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task_name": "no_such_task"}, "task_name"),
        ({"params": {"zzz": 1}}, "params"),
        ({"cron": "every day"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"queue": "missing"}, "queue"),
        ({"every": 60}, "cron"),  # both cron and every
        ({"crom": "* * * * *"}, "crom"),  # a typo is refused, never dropped
        ({"priority": 101}, "priority"),
    ],
)
async def test_an_invalid_entry_is_a_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, object], field: str
) -> None:
    body = {"key": "k", "task_name": "add", "params": {"a": 1}, "cron": "* * * * *", **change}

    response = await api.post("/recurring", json=body)

    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"]), response.text
    assert (await api.get("/recurring")).json() == []


async def test_a_queue_that_recurring_entries_submit_to_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})
    await api.post("/recurring", json={"key": "r", "task_name": "anything", "every": 60, "queue": "reports"})

    refused = await api.delete("/queues/reports")
    await api.delete("/recurring/r")
    allowed = await api.delete("/queues/reports")

    assert refused.status_code == 409 and "recurring entries" in refused.json()["detail"]
    assert allowed.status_code == 204


# -- real processes -----------------------------------------------------------------------------


async def test_declared_entry_fires_through_two_schedulers_one_killed_mid_fire_each_time_once(
    e2e: E2E,
) -> None:
    """The worker stores tests.e2e_tasks' every-second entry; one scheduler dies after each of its
    first submits (before recording the fire time), another runs throughout: every fire time in the
    window is one task, run once, listed by ``recurring_key``."""
    e2e.platform.worker(E2E_RECURRING="1")
    await wait_until(lambda: e2e.config.get_recurring("e2e-every-second"), seconds=20)
    e2e.platform.scheduler()
    crashes = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        crashy = e2e.platform.scheduler(JOBBERS_TEST_FAULT="exit_after_recurring_submit")
        await asyncio.to_thread(crashy.wait, 10)
        crashes += crashy.returncode == 17
    await asyncio.sleep(1.5)

    manager = e2e.platform.manager()
    async with httpx.AsyncClient(base_url=manager.url) as http:
        listed = (
            await http.get("/tasks", params={"recurring_key": "e2e-every-second", "limit": 1000})
        ).json()
    fired = sorted(
        int(dt.datetime.fromisoformat(t["recurring_at"]).timestamp() * 1000) for t in listed["tasks"]
    )
    assert len(fired) >= 4 and len(set(fired)) == len(fired)
    assert [b - a for a, b in itertools.pairwise(fired)] == [1000] * (len(fired) - 1)  # no gap
    assert all(t["id"] == recurring_task_id("e2e-every-second", at) for t, at in zip(
        sorted(listed["tasks"], key=lambda t: t["recurring_at"]), fired, strict=True))  # fmt: skip
    assert all(t["priority"] == 5 and t["params"] == {"label": "tick"} for t in listed["tasks"])
    done = await e2e.wait_terminal([t["id"] for t in listed["tasks"]])
    assert all(t.status is TaskStatus.COMPLETED for t in done)
    runs = [line for line in e2e.platform.run_log.read_text().splitlines() if "recurring_tick" in line]
    assert len(runs) == len({line.split()[0] for line in runs}) >= len(fired)  # each ran once
    assert crashes >= 1, "no scheduler died between submitting and recording"


# -- migrations ---------------------------------------------------------------------------------


def _previous_version_tables() -> MetaData:
    """The tables as the version before migrations created them (metadata.create_all)."""
    old = MetaData()
    Table(
        "jobbers_queues", old,
        Column("name", String(64), primary_key=True),
        Column("max_concurrent", Integer, nullable=True),
        Column("rate_numerator", Integer, nullable=True),
        Column("rate_denominator", Integer, nullable=False, default=1),
        Column("rate_period", String(16), nullable=False, default="second"),
    )  # fmt: skip
    Table("jobbers_roles", old, Column("name", String(64), primary_key=True))
    Table(
        "jobbers_role_queues", old,
        Column("role", String(64), ForeignKey("jobbers_roles.name", ondelete="CASCADE"), primary_key=True),
        Column("queue", String(64), ForeignKey("jobbers_queues.name", ondelete="CASCADE"), primary_key=True),
    )  # fmt: skip
    return old


async def test_a_database_of_the_previous_version_is_migrated_keeping_its_data(config_url: str) -> None:
    old = _previous_version_tables()
    engine = create_async_engine(config_url)
    async with engine.begin() as conn:
        await conn.run_sync(old.create_all)
        queues = old.tables["jobbers_queues"]
        await conn.execute(
            insert(queues).values(name="reports", max_concurrent=3, rate_denominator=1, rate_period="second")
        )
        await conn.execute(insert(old.tables["jobbers_roles"]).values(name="batch"))
        await conn.execute(insert(old.tables["jobbers_role_queues"]).values(role="batch", queue="reports"))
    await engine.dispose()

    config = ConfigStore(config_url)
    try:
        await config.migrate()
        await config.migrate()  # again: nothing to do
        async with config.engine.connect() as conn:
            revision = await conn.run_sync(schema.current_revision)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        reports = await config.get_queue("reports")
        role = await config.get_role("batch")
        await config.save_recurring(RecurringEntry(key="r", task_name="t", queue="reports", every_seconds=5))
        stored = await config.get_recurring("r")
    finally:
        await config.close()

    assert revision == schema.HEAD_REVISION
    assert {"jobbers_recurring", "alembic_version", "jobbers_queues"} <= tables
    assert reports is not None and reports.max_concurrent == 3
    assert role is not None and role.queues == ["reports"]
    assert stored is not None and stored.every_seconds == 5


async def test_several_processes_migrating_a_new_database_at_once_all_succeed(config_url: str) -> None:
    from tests.processes import script

    env = {**os.environ, "SQL_PATH": config_url}
    procs = [
        await asyncio.create_subprocess_exec(script("jobbers_migrate"), env=env, stdout=PIPE, stderr=PIPE)
        for _ in range(3)
    ]
    results = [await p.communicate() for p in procs]
    in_process = [ConfigStore(config_url) for _ in range(2)]
    try:
        await asyncio.gather(*(s.migrate() for s in in_process))
        queues = [q.name for q in await in_process[0].list_queues()]
    finally:
        await asyncio.gather(*(s.close() for s in in_process))

    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert queues == ["default"]


async def test_every_revision_in_order_gives_the_schema_a_new_database_gets(config_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from jobbers.config_store.tables import metadata

    engine = create_async_engine(config_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: schema.upgrade(c, "0001"))  # one revision at a time, from empty
            await conn.run_sync(schema.upgrade)
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
            revision = await conn.run_sync(schema.current_revision)
    finally:
        await engine.dispose()
    assert revision == schema.HEAD_REVISION and diff == []


def test_the_newest_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(schema.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == schema.HEAD_REVISION


def test_jobbers_migrate_reports_the_revision(tmp_path: object) -> None:
    import subprocess

    from tests.processes import script

    db = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    result = subprocess.run([script("jobbers_migrate")], env={**os.environ, "SQL_PATH": db},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"revision {schema.HEAD_REVISION}" in result.stdout
    assert "alembic" not in result.stderr  # one line of ours, not Alembic's set-up chatter
    assert f"SQL schema created at revision {schema.HEAD_REVISION}" in result.stderr
