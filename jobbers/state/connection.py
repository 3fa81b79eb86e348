"""Redis connections (one Redis, Sentinel, or a Redis Cluster) and the pub/sub listener every
long-running process uses.

``REDIS_URL`` forms (``parse_redis_url``):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path/to.sock``:
  one Redis, through ``redis.asyncio.Redis``.
- ``redis+sentinel://[[user]:password@]host1:26379[,host2:26379...]/service[/db]``
  (``rediss+sentinel://`` for TLS to the Redis nodes): the master of ``service`` as the Sentinels
  name it, through ``redis.asyncio.sentinel.Sentinel``; the user and password are the Redis
  nodes'; ``?sentinel_password=...`` (and ``sentinel_username``) authenticate to the Sentinels.
- ``redis+cluster://[[user]:password@]host1:7000[,host2:7001...]`` (``rediss+cluster://`` for TLS),
  or any ``redis://`` URL with ``REDIS_CLUSTER=1``: a Redis Cluster through
  ``redis.asyncio.cluster.RedisCluster``; the hosts are start-up nodes (one is enough).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff

__all__ = ["TRANSIENT_REDIS_ERRORS", "RedisTarget", "SignalListener", "connect", "parse_redis_url"]

log = logging.getLogger(__name__)

SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_QUERY_OPTIONS = {"sentinel_password", "sentinel_username"}


@dataclass(frozen=True)
class RedisTarget:
    """What a ``REDIS_URL`` names: its ``kind`` (single, sentinel, cluster) and how to reach it."""

    kind: str
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_options: dict[str, str] = field(default_factory=dict)


def _hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        if not part:
            raise ValueError("an empty host in the host list")
        host, colon, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not colon:
            host, port = part, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        hosts.append((host, int(port)))
    return tuple(hosts)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def parse_redis_url(url: str, cluster: bool = False) -> RedisTarget:
    """The target ``url`` names (``cluster``: ``REDIS_CLUSTER`` is set); raises ``ValueError`` with
    a one-line reason for a malformed one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in SINGLE_SCHEMES:
        if cluster and scheme == "unix":
            raise ValueError("REDIS_CLUSTER=1 needs a redis:// or rediss:// URL of a cluster node")
        if scheme != "unix" and not parts.hostname:
            raise ValueError("no host")
        if scheme != "unix":
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        if cluster:
            return parse_redis_url(url.replace(scheme, scheme + "+cluster", 1))
        return RedisTarget("single", url)
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        known = ", ".join(f"{s}://" for s in SINGLE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES)
        raise ValueError(
            f"unknown scheme {parts.scheme + '://' if parts.scheme else '(none)'}; use one of {known}"
        )
    username, password = _credentials(parts.netloc)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - _QUERY_OPTIONS
    if unknown:
        raise ValueError(
            f"unknown option {sorted(unknown)[0]!r} (known: {', '.join(sorted(_QUERY_OPTIONS))})"
        )
    tls = scheme.startswith("rediss")
    path = [p for p in parts.path.split("/") if p]
    if scheme in SENTINEL_SCHEMES:
        hosts = _hosts(parts.netloc, 26379)
        if not path or len(path) > 2:
            raise ValueError("a Sentinel URL names its service: redis+sentinel://host:26379,.../service[/db]")
        if len(path) == 2 and not path[1].isdigit():
            raise ValueError(f"database {path[1]!r} is not a number")
        db = int(path[1]) if len(path) == 2 else 0
        return RedisTarget("sentinel", url, hosts, path[0], db, username, password, tls, query)
    if query:
        raise ValueError(f"option {sorted(query)[0]!r} is only for Sentinel URLs")
    if path and path != ["0"]:
        raise ValueError("a Redis Cluster has only database 0")
    return RedisTarget("cluster", url, _hosts(parts.netloc, 6379), "", 0, username, password, tls)


_RESILIENT: dict[str, Any] = {
    "socket_keepalive": True,
    "socket_connect_timeout": 5,
    "health_check_interval": 15,
}


def connect(url: str, cluster: bool = False) -> Redis:
    """A client that survives restarts and failovers (keepalive, health checks, retries on
    reconnect) for ``REDIS_URL`` ``url``; ``cluster``: ``REDIS_CLUSTER`` is set. A malformed URL
    raises ``ValueError``; nothing is connected yet.

    A cluster client is typed as ``Redis``: it offers the same commands the state layer uses (each
    routed by its key's slot) and pipelines that batch per node.
    """
    target = parse_redis_url(url, cluster)
    retry = AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    if target.kind == "single":
        return Redis.from_url(
            url, retry=retry, retry_on_error=[RedisConnectionError, RedisTimeoutError], **_RESILIENT
        )
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel_auth = {
            "username": target.sentinel_options.get("sentinel_username"),
            "password": target.sentinel_options.get("sentinel_password"),
        }
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(target.hosts),
            sentinel_kwargs={**sentinel_auth, "socket_connect_timeout": 2, "socket_timeout": 2},
            **_RESILIENT,
        )
        master: Redis = sentinel.master_for(
            target.service,
            db=target.db,
            ssl=target.tls,
            retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            **auth,
        )
        return master
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        ssl=target.tls,
        # A failover moves slots: retry long enough for a replica to be promoted (about 1-2 s).
        retry=AsyncRetry(ExponentialBackoff(cap=0.5, base=0.05), retries=20),
        **auth,
        **_RESILIENT,
    )
    return cast(Redis, client)


def is_cluster(client: Redis) -> bool:
    """Whether ``client`` is a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def _raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if the running task has been cancelled.

    redis-py can turn a cancellation that lands while a connection is being set up or torn down
    into a connection error, or drop it; a loop that retries such errors would then listen on,
    cancelled in name only, and the ``asyncio.run`` or event loop waiting for it at shutdown would
    hang. The listener checks before each connection attempt and each read, so a cancelled one
    stops there instead.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SignalListener:
    """Listens on pub/sub channels, reconnecting after Redis restarts (made by ``TaskStore.listener``).

    Pub/sub only makes things fast: every signal it carries is also durable in Redis state, so a
    message lost while disconnected costs latency, never correctness. ``on_reconnect`` runs after
    each (re-)subscription so the owner can re-check state it may have missed.
    """

    def __init__(
        self,
        redis: Redis,
        handlers: Mapping[str, Callable[[str], None] | None],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        #: channel -> what to call with each message's data
        self.handlers: dict[str, Callable[[str], None]] = {c: h for c, h in handlers.items() if h}
        self.on_reconnect = on_reconnect
        self._stopping = False

    def stop(self) -> None:
        """Ask ``run`` to return once its current read ends (the owner also cancels it)."""
        self._stopping = True

    async def run(self) -> None:
        """Listen until ``stop()`` or cancellation."""
        backoff = Backoff()
        while not self._stopping:
            _raise_if_cancelling()
            try:
                if is_cluster(self.redis):
                    # A cluster client learns its slots at its first command; its pub/sub picks a
                    # node by slot, so before that it fails (KeyError naming the slot).
                    await self.redis.initialize()
            except asyncio.CancelledError:
                raise
            except TRANSIENT_REDIS_ERRORS as exc:
                await backoff.wait(log, "pub/sub connection", exc)
                continue
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*self.handlers)
                backoff.succeeded()
                if self.on_reconnect:
                    self.on_reconnect()
                while not self._stopping:
                    _raise_if_cancelling()
                    # Blocking read: redis-py's timed get_message adds ~0.5 ms per message.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is None or message["type"] != "message":
                        continue
                    handler = self.handlers.get(message["channel"].decode())
                    if handler:
                        handler(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except TRANSIENT_REDIS_ERRORS as exc:
                await backoff.wait(log, "pub/sub connection", exc)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                except Exception:
                    pass


def _sync_client(url: str, cluster: bool, timeout: float) -> Any:
    """A blocking client for ``url`` (any ``REDIS_URL`` form), for launchers."""
    import redis as sync_redis
    from redis.cluster import ClusterNode as SyncClusterNode
    from redis.cluster import RedisCluster as SyncRedisCluster
    from redis.sentinel import Sentinel as SyncSentinel

    target = parse_redis_url(url, cluster)
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if target.kind == "single":
        return sync_redis.Redis.from_url(url, **options)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel = SyncSentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(target.hosts),
            sentinel_kwargs={
                "username": target.sentinel_options.get("sentinel_username"),
                "password": target.sentinel_options.get("sentinel_password"),
                **options,
            },
            **options,
        )
        return sentinel.master_for(target.service, db=target.db, ssl=target.tls, **auth)  # type: ignore[no-untyped-call,unused-ignore]
    nodes = [SyncClusterNode(host, port) for host, port in target.hosts]  # type: ignore[no-untyped-call]
    return SyncRedisCluster(startup_nodes=nodes, ssl=target.tls, **auth, **options)


def ping_problem_sync(url: str, timeout: float = 1.0, cluster: bool = False) -> str | None:
    """Why the Redis at ``url`` does not answer PING (None when it does); blocking, for launchers."""
    import redis as sync_redis

    try:
        client = _sync_client(url, cluster, timeout)
        client.ping()
    except (sync_redis.RedisError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    client.close()
    return None


def count_keys_sync(url: str, matches: tuple[str, ...], cluster: bool = False) -> tuple[int, int] | None:
    """(keys in the database, keys matching any of the globs ``matches``) at ``url``, or None if
    unreadable."""
    import redis as sync_redis

    try:
        client = _sync_client(url, cluster, 2)
    except ValueError:
        return None
    try:
        total = client.dbsize()
        if isinstance(total, dict):  # a cluster answers per node
            total = sum(int(n) for n in total.values())
        return int(total), sum(sum(1 for _ in client.scan_iter(match=m, count=1000)) for m in matches)
    except (sync_redis.RedisError, OSError):
        return None
    finally:
        client.close()
