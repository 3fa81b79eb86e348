"""The scripts as Redis Functions (Redis 7 and later): every script is called by FCALL from a
library of its own, loaded again by the call that finds it missing; a Redis without functions
(6.2 here) runs the same scripts by EVALSHA (jobbers.state.scripts)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.state.records import NewTask, Outcome
from jobbers.state.scripts import OOM_RULES, READ_ONLY, SCRIPT_NAMES, OomRule, function_library
from jobbers.state.store import TaskStore

DEFAULT = [QueueConfig(name="default")]


async def major_version(redis: Redis) -> int:
    return int(str((await redis.info("server"))["redis_version"]).split(".")[0])


async def calls_of(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _pairs(flat: list[object]) -> dict[str, object]:
    keys = (k.decode() if isinstance(k, bytes) else str(k) for k in flat[::2])
    return dict(zip(keys, flat[1::2], strict=True))


async def libraries(redis: Redis, pattern: str) -> dict[str, set[str]]:
    """The loaded libraries whose name matches ``pattern``, each with its one function's flags."""
    out = {}
    for raw in await redis.function_list(pattern):
        lib = _pairs(raw)
        (function,) = lib["functions"]  # type: ignore[misc]
        flags = _pairs(function)["flags"]
        out[lib["library_name"].decode()] = {f.decode() for f in flags}  # type: ignore[union-attr,attr-defined]
    return out


async def test_scripts_are_called_as_functions_on_redis_7_and_by_evalsha_before(
    redis: Redis, store: TaskStore
) -> None:
    functions = await major_version(redis) >= 7
    fcalls, evalshas = await calls_of(redis, "fcall"), await calls_of(redis, "evalsha")
    task_id = (await store.submit(NewTask(name="t"))).id
    (claimed,) = (await store.claim("w", 30, 1, DEFAULT)).tasks
    assert await store.finish([Outcome(claimed.id, claimed.token, TaskStatus.COMPLETED)]) == [True]
    (task,) = await store.get_tasks([task_id])
    assert task.status is TaskStatus.COMPLETED
    assert store._scripts.functions_supported is functions
    if functions:
        assert await calls_of(redis, "fcall") - fcalls >= 3  # submit, claim, finish (and loads' retries)
        assert await calls_of(redis, "evalsha") == evalshas
    else:
        assert await calls_of(redis, "evalsha") - evalshas >= 3


async def test_every_library_loads_with_its_rule_as_flags_or_is_refused_by_a_redis_without_functions(
    redis: Redis,
) -> None:
    functions = await major_version(redis) >= 7
    names = {}
    for name in SCRIPT_NAMES:
        function, library = function_library(name)
        assert function.startswith(f"jobbers_{name}_") and library.startswith(f"#!lua name={function}\n")
        names[name] = function
        if not functions:
            try:
                await redis.function_load(library, replace=True)
            except ResponseError as exc:
                assert "unknown command" in str(exc).lower()
            else:
                raise AssertionError("a Redis before 7 loaded a function library")
            continue
        assert (await redis.function_load(library, replace=True)).decode() == function
    if not functions:
        return
    listed = await libraries(redis, "jobbers_*")
    for name, function in names.items():
        rule = OOM_RULES.get(name)
        expected = {"no-writes"} if name in READ_ONLY else {"allow-oom"} if rule is OomRule.ALLOW else set()
        assert listed[function] == expected, name


def test_a_library_is_named_by_its_source_so_two_versions_never_share_a_name() -> None:
    assert function_library("claim") == function_library("claim")
    assert function_library("claim")[0] != function_library("claim", audit_max_events=10)[0]
    assert function_library("claim")[0] != function_library("finish")[0]


async def test_a_library_gone_from_redis_is_loaded_again_by_the_next_call_alone_or_in_a_pipeline(
    redis: Redis, store: TaskStore
) -> None:
    functions = await major_version(redis) >= 7

    async def flush() -> None:
        if functions:
            await redis.function_flush()
        else:
            await redis.script_flush()

    first = await store.submit(NewTask(name="t"))
    await flush()  # as after a restart without persistence
    second = await store.submit(NewTask(name="t"))  # one call
    await flush()
    # Two queues in two key spaces: one pipeline of two calls, each answered "not found".
    more = await store.submit_many([NewTask(name="t"), NewTask(name="t", queue="other")])
    ids = [first.id, second.id, *(o.id for o in more)]
    assert [t.status for t in await store.get_tasks(ids)] == [TaskStatus.SUBMITTED] * 4
    if functions:
        assert set(await libraries(redis, "jobbers_submit_*")) == {function_library("submit")[0]}
