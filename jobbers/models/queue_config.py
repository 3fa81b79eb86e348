"""Queue configuration: concurrency and rate limits, validated names."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

#: The one pattern for queue and role names: what the API accepts, and what keeps a name usable
#: inside a Redis key (no ``:``, no braces, no spaces).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: The queue a fresh install has (created by ``jobbers_migrate``) and tasks go to unless told.
DEFAULT_QUEUE = "default"


class RatePeriod(StrEnum):
    """The unit of a queue's rate limit window."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def seconds(self) -> int:
        return {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[self.value]


class QueueConfig(BaseModel):
    """A named queue. ``max_concurrent`` and the rate limit hold across all workers."""

    name: str = Field(pattern=NAME_PATTERN)
    max_concurrent: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_numerator: int | None = Field(default=None, ge=1, le=1_000_000_000)
    rate_denominator: int = Field(default=1, ge=1, le=1_000_000)
    rate_period: RatePeriod = RatePeriod.SECOND

    @property
    def rate_window_ms(self) -> int:
        """Length of the sliding window in which at most ``rate_numerator`` tasks may start."""
        return self.rate_denominator * self.rate_period.seconds * 1000


def rate_limit_allows(limit: int, started_in_window: int, wanted: int) -> int:
    """How many of ``wanted`` tasks may start now under a limit of ``limit`` per window.

    Mirrors the arithmetic of ``claim.lua`` so it can be unit-tested without Redis.
    """
    return max(0, min(wanted, limit - started_in_window))
