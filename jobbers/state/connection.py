"""Redis connections and the pub/sub listener every long-running process uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff

__all__ = ["TRANSIENT_REDIS_ERRORS", "SignalListener", "connect"]

log = logging.getLogger(__name__)


def connect(url: str) -> Redis:
    """A Redis client that survives restarts: keepalive, health checks, retries on reconnect."""
    return Redis.from_url(
        url,
        socket_keepalive=True,
        socket_connect_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


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
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*self.handlers)
                backoff.succeeded()
                if self.on_reconnect:
                    self.on_reconnect()
                while not self._stopping:
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
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    pass


def ping_problem_sync(url: str, timeout: float = 1.0) -> str | None:
    """Why the Redis at ``url`` does not answer PING (None when it does); blocking, for launchers."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except (sync_redis.RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def count_keys_sync(url: str, match: str) -> tuple[int, int] | None:
    """(keys in the database, keys matching the glob ``match``) at ``url``, or None if unreadable."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(url, socket_timeout=2)
    try:
        return int(client.dbsize()), sum(1 for _ in client.scan_iter(match=match, count=1000))
    except (sync_redis.RedisError, OSError):
        return None
    finally:
        client.close()
