"""The Lua scripts: their shared names come from Python, and every key they touch lies in the key
space of the call (so a Redis Cluster can route each call to one slot)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from importlib import resources
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from jobbers.models.event import EventKind
from jobbers.models.outcomes import CancelKind, ResubmitKind, RetryKind, SubmitKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import (
    ALLOWED_TRANSITIONS,
    CANCELLABLE_STATUSES,
    DEAD_LETTER_STATUSES,
    LISTED_STATUSES,
    TERMINAL_STATUSES,
    TaskStatus,
)
from jobbers.state.records import LeaseRenewal, NewTask, Outcome, StallConfig
from jobbers.state.scripts import SCRIPT_NAMES, lua_preamble
from jobbers.state.store import TaskStore
from jobbers.state.task_schema import TASK_FIELDS

ROOT = Path(__file__).resolve().parent.parent
LUA = resources.files("jobbers.state") / "lua"
NAMES = (TaskStatus, RetryKind, SubmitKind, CancelKind, ResubmitKind, EventKind)


def _body(name: str) -> str:
    """A script's own source without its comments."""
    return re.sub(r"--[^\n]*", "", (LUA / f"{name}.lua").read_text())


@pytest.mark.parametrize("name", [*SCRIPT_NAMES, "_common"])
def test_scripts_spell_no_status_or_outcome_name_of_their_own(name: str) -> None:
    body = _body(name)
    fields = {f.key for f in TASK_FIELDS}  # a record field may share an event kind's name
    for enum in NAMES:
        for member in enum:
            if enum is EventKind and member.value in fields:
                continue
            assert f"'{member.value}'" not in body and f'"{member.value}"' not in body, (name, member)


@pytest.mark.parametrize("name", [*SCRIPT_NAMES, "_common"])
def test_scripts_form_keys_only_through_the_generated_helpers(name: str) -> None:
    body = _body(name)
    assert not re.search(r"\b[SG]\s*\.\.", body), name  # no key built by hand from the space or prefix


async def test_the_generated_tables_are_the_models_tables(redis: Redis, key_prefix: str) -> None:
    source = lua_preamble() + "return cjson.encode({ALLOWED, TERMINAL, CANCELLABLE})"
    allowed, terminal, cancellable = json.loads(await redis.eval(source, 1, key_prefix + "x", key_prefix, key_prefix))
    assert {old: set(new) for old, new in allowed.items()} == {
        old.value: {s.value for s in new} for old, new in ALLOWED_TRANSITIONS.items() if new
    }
    assert set(terminal) == {s.value for s in TERMINAL_STATUSES}
    assert set(cancellable) == {s.value for s in CANCELLABLE_STATUSES}


async def test_a_status_change_outside_the_table_is_refused_by_every_script(redis: Redis, key_prefix: str) -> None:
    common = (LUA / "_common.lua").read_text()
    source = lua_preamble() + common + "move_status('T1', COMPLETED, SUBMITTED, 1) return 1"
    with pytest.raises(ResponseError, match="completed -> submitted of T1 is not allowed"):
        await redis.eval(source, 1, key_prefix + "x", key_prefix, key_prefix)
    assert await redis.zcard(key_prefix + "status:submitted") == 0


async def test_a_call_whose_first_key_is_outside_its_space_is_refused(store: TaskStore) -> None:
    with pytest.raises(ResponseError, match="outside the key space"):
        await store._scripts.run("recover", store.keys.space("default"), ["elsewhere:inflight"], [10])


def test_the_ui_status_lists_are_the_models_lists() -> None:
    dom = (ROOT / "jobbers" / "manager" / "ui" / "js" / "dom.js").read_text()

    def js_list(name: str) -> list[str]:
        found = re.search(rf"export const {name} = \[([^\]]*)\]", dom)
        assert found, name
        return re.findall(r"'([a-z_]+)'", found.group(1))

    assert js_list("STATUSES") == [s.value for s in LISTED_STATUSES]
    assert set(js_list("TERMINAL")) == {s.value for s in TERMINAL_STATUSES}
    assert set(js_list("CANCELLABLE")) == {s.value for s in CANCELLABLE_STATUSES}
    assert set(js_list("DEAD_LETTER")) == {s.value for s in DEAD_LETTER_STATUSES}
    assert js_list("EVENT_TYPES") == [k.value for k in EventKind]
    pages = (ROOT / "jobbers" / "manager" / "ui" / "js" / "pages").glob("*.js")
    for page in pages:  # the pages use the lists above instead of spelling statuses in arrays
        assert not re.search(r"\[\s*'(" + "|".join(s.value for s in LISTED_STATUSES) + r")'", page.read_text()), page


async def test_every_key_a_script_touches_is_in_its_space_and_every_channel_global(
    redis: Redis, redis_server: object, key_prefix: str
) -> None:
    store = TaskStore(redis, key_prefix)
    space = store.keys.space("q").prefix
    assert key_slot(space.encode()) != key_slot(store.keys.space("other").prefix.encode())  # queues spread
    monitor_client = Redis.from_url(redis_server.url)  # type: ignore[attr-defined]
    seen: list[str] = []
    marker = "jobbers-test-done-" + key_prefix

    async def watch() -> None:
        async with monitor_client.monitor() as monitor:
            started.set()
            async for command in monitor.listen():
                if marker in command["command"]:
                    return
                if command["client_type"] == "lua":
                    seen.append(command["command"])

    started = asyncio.Event()
    watcher = asyncio.create_task(watch())
    await started.wait()
    await asyncio.sleep(0.05)

    queue = [QueueConfig(name="q", max_concurrent=10, rate_numerator=100)]
    await store.publish_task_types([("t", 1, StallConfig(0.01, max_stalls=0, dead_letter=True))], ["q"])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=50)
    ids = [
        o.id
        for o in await store.submit_many(
            [NewTask(name="t", queue="q", idempotency_key=f"k{i}", fingerprint="f") for i in range(6)]
            + [NewTask(name="t", queue="q", run_at=later)]
        )
    ]
    held = (await store.claim("w", 30, 6, queue)).tasks
    await store.renew_leases(30, [LeaseRenewal(t.id, t.token, heartbeat=True) for t in held])
    await store.finish(
        [
            Outcome(held[0].id, held[0].token, TaskStatus.COMPLETED, result=b"\xc0"),
            Outcome(held[1].id, held[1].token, TaskStatus.FAILED, error_type="E", error_message="x", dead_letter=True),
            Outcome(held[2].id, held[2].token, RetryKind.RETRY, retry_attempt=1, delay_ms=10),
            Outcome(held[3].id, held[3].token, RetryKind.REQUEUE),
        ]
    )
    await store.cancel([held[4].id, ids[6]])
    await asyncio.sleep(0.06)
    await store.promote_due("q", 10)
    await store.claim("w", 0.001, 10, queue)
    await asyncio.sleep(0.02)
    await store.stall_silent_tasks(None)
    await store.recover_expired_leases()
    await store.resubmit_dead_letters([held[1].id], reset_retry_count=True)
    await store.remove_dead_letters([held[1].id])
    now_ms = await store.redis_time_ms()
    await store.prune_terminal(TaskStatus.COMPLETED, now_ms + 1)
    await store.prune_dead_letters(now_ms + 1)
    await store.prune_rate_limits(now_ms + 1)
    await store.report_worker("w", 5, {"role": "default"})
    await redis.echo(marker)
    await asyncio.wait_for(watcher, 10)
    await monitor_client.aclose()

    # Declared global keys: the worker registry (worker_seen), and the locator, which the submit call
    # is given as KEYS[2] when not on a cluster; on Redis 6 worker_seen's OOM rule writes (changing
    # nothing) the guard key of its space, the global one (keys.SPACE_KEYS["oom_guard"]).
    global_keys = {store.keys.workers, store.keys.worker("w"), store.keys.locator, key_prefix + "oom_guard"}
    channels = {store.keys.wake_channel, store.keys.cancel_channel, store.keys.sched_channel,
                store.keys.transitions_channel}
    commands = {line.split(" ", 1)[0].upper() for line in seen}
    assert {"ZPOPMIN", "HINCRBY", "PUBLISH", "INCR", "DEL"} <= commands  # the walk reached every kind of write
    for line in seen:
        command, *args = line.split(" ")
        if command.upper() == "TIME":
            continue
        if command.upper() == "PUBLISH":
            assert args[0] in channels, line
        else:
            assert args[0].startswith(space) or args[0] in global_keys, line
