"""Waiting out a Redis outage: the one back-off every long-running loop uses between retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")

#: Errors that mean "Redis is unreachable or not ready right now"; callers back off and retry.
TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)

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
