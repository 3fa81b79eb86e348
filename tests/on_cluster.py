"""The one-Redis fixtures ``store``, ``manager_settings`` and ``e2e``, on the 3-master cluster.

A module of cluster tests imports the ones it needs, so the one-Redis tests it reuses run there
unchanged: ``from tests.on_cluster import e2e, manager_settings, store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobbers.settings import Settings
from jobbers.state.connection import connect
from jobbers.state.store import TaskStore
from tests.e2e import E2E, make_e2e
from tests.topology import Cluster


@pytest.fixture
async def store(cluster: Cluster, key_prefix: str) -> AsyncIterator[TaskStore]:
    """A store on the cluster."""
    redis = connect(cluster.url)
    yield TaskStore(redis, key_prefix)
    await redis.aclose()


@pytest.fixture
def manager_settings(cluster: Cluster, key_prefix: str, sqlite_url: str) -> Settings:
    """The manager of the ``api`` fixture, on the cluster."""
    return Settings(redis_url=cluster.url, redis_key_prefix=key_prefix, sql_path=sqlite_url)


@pytest.fixture
async def e2e(cluster: Cluster, key_prefix: str, tmp_path: Path) -> AsyncIterator[E2E]:
    """Processes, a store and a client on the cluster."""
    async for env in make_e2e(cluster, key_prefix, tmp_path):
        yield env
