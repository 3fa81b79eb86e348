"""Waiting out a Redis outage: the one back-off every long-running loop uses between retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import OutOfMemoryError, RedisError

T = TypeVar("T")

#: Errors that mean "Redis is unreachable or not ready right now"; callers back off and retry.
TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)



def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write because it is out of memory (``maxmemory``
    reached under ``noeviction``): a command's ``OOM`` error, or a script's (Redis 6 wraps it)."""
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, RedisError) and "OOM command not allowed" in str(exc)
    )


#: The first delay after a failure, and the longest (it doubles in between).
FIRST_DELAY = 0.05
MAX_DELAY = 2.0


class Backoff:
    """Exponential delay between retries (50 ms doubling to 2 s), reset by ``succeeded()``."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def succeeded(self) -> None:
        """The call went through: the next failure waits the first delay again."""
        self.delay = self.first

    def next_delay(self) -> float:
        """The delay to wait now; the one after it is doubled (up to the cap)."""
        delay = self.delay
        self.delay = min(delay * 2, self.cap)
        return delay

    async def wait(self, log: logging.Logger, what: str, exc: BaseException) -> None:
        """Log that ``what`` failed with ``exc`` (a warning) and sleep the next delay."""
        delay = self.next_delay()
        log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)


async def until_reachable(call: Callable[[], Awaitable[T]], log: logging.Logger, what: str) -> T:
    """Run ``call`` until Redis lets it through, backing off after each transient failure."""
    backoff = Backoff()
    while True:
        try:
            return await call()
        except TRANSIENT_REDIS_ERRORS as exc:
            await backoff.wait(log, what, exc)


#: How long a long-running process waits for one Redis call before it gives up on it (dropping
#: its connection) and treats Redis as unreachable: a black-holed connection never answers.
CALL_SECONDS = 5.0
#: After that, how long a call whose reply may already be waiting (an event loop that was blocked
#: while it ran) gets to deliver it before it is abandoned.
CALL_GRACE_SECONDS = 0.1


async def within(call: Awaitable[T], seconds: float = CALL_SECONDS, what: str = "Redis call") -> T:
    """Await ``call``, giving up after ``seconds``: then it is cancelled (redis-py drops the
    connection it was using) and ``TimeoutError`` (one of ``TRANSIENT_REDIS_ERRORS``) is raised.

    Unlike a plain timeout, a reply that arrived while the event loop was blocked is taken: once the
    time is up the call gets a short grace, so a blocked loop does not discard work Redis did (a
    claim whose reply is dropped leaves its tasks to lease recovery). Costs a timer, not a task.
    """
    loop = asyncio.get_running_loop()
    scope = asyncio.timeout(None)
    extend = loop.call_later(seconds, lambda: scope.reschedule(loop.time() + CALL_GRACE_SECONDS))
    try:
        async with scope:
            return await call
    except TimeoutError:
        if not scope.expired():
            raise
        raise TimeoutError(f"{what}: Redis did not answer within {seconds:g} s") from None
    finally:
        extend.cancel()
