"""Redis connections and the pub/sub listener every long-running process uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from jobbers.state.keys import Keys

log = logging.getLogger(__name__)

#: Errors that mean "Redis is unreachable or not ready right now"; callers back off and retry.
TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


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
    """Listens on the wake, cancel and schedule channels, reconnecting after Redis restarts.

    Pub/sub only makes things fast: every signal it carries is also durable in Redis state, so a
    message lost while disconnected costs latency, never correctness. ``on_reconnect`` runs after
    each re-subscription so the owner can re-check state it may have missed.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        on_wake: Callable[[str], None] | None = None,
        on_cancel: Callable[[str], None] | None = None,
        on_schedule: Callable[[], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.handlers: dict[str, Callable[[str], None]] = {}
        if on_wake:
            self.handlers[keys.wake_channel] = on_wake
        if on_cancel:
            self.handlers[keys.cancel_channel] = on_cancel
        if on_schedule:
            self.handlers[keys.sched_channel] = lambda _msg: on_schedule()
        self.on_reconnect = on_reconnect
        self.subscribed = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Ask ``run`` to return once its current read ends (the owner also cancels it)."""
        self._stopping = True

    async def run(self) -> None:
        """Listen until ``stop()`` or cancellation."""
        delay = 0.05
        while not self._stopping:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*self.handlers)
                self.subscribed.set()
                delay = 0.05
                if self.on_reconnect:
                    self.on_reconnect()
                while not self._stopping:
                    # Blocking read: redis-py's timed get_message adds ~0.5 ms per message.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is None or message["type"] != "message":
                        continue
                    channel = message["channel"].decode()
                    handler = self.handlers.get(channel)
                    if handler:
                        handler(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except TRANSIENT_REDIS_ERRORS as exc:
                self.subscribed.clear()
                log.warning("pub/sub connection lost (%s); reconnecting in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    pass
