"""How a registered task behaves: retries, backoff, dead-lettering, shutdown, stall budget."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class BackoffStrategy(StrEnum):
    """How the delay grows between retries (always capped at ``max_retry_delay``)."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    EXPONENTIAL_JITTER = "exponential_jitter"


class DeadLetterPolicy(StrEnum):
    """What happens to a task that ends ``failed`` or ``stalled``."""

    NONE = "none"
    SAVE = "save"


class ShutdownPolicy(StrEnum):
    """What a worker does with a running task when it receives SIGTERM."""

    STOP = "stop"
    RESUBMIT = "resubmit"
    CONTINUE = "continue"


class OnConflict(StrEnum):
    """What a task whose concurrency key has no free slot does."""

    BLOCK = "block"  # wait (never dropped) and start as soon as a slot frees
    DISCARD = "discard"  # a submit that finds the key at its limit ends the task cancelled


TaskFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class TaskConfig:
    """Everything ``@register_task`` records about one (name, version)."""

    name: str
    function: TaskFunction
    version: int = 1
    max_retries: int = 3
    retry_delay: float = 5.0
    backoff_strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    max_retry_delay: float = 3600.0
    dead_letter_policy: DeadLetterPolicy = DeadLetterPolicy.NONE
    max_heartbeat_interval: dt.timedelta | None = None
    timeout: float | None = None
    expected_exceptions: tuple[type[BaseException], ...] = field(default_factory=tuple)
    on_shutdown: ShutdownPolicy = ShutdownPolicy.STOP
    max_stalls: int = 1
    #: The priority of its tasks when the submitter gives none (-100..100, higher first).
    priority: int = 0
    #: A template formatted from each task's params (``"account:{account_id}"``): at most
    #: ``concurrency_limit`` tasks of a queue with the same key hold a slot at once; a slot
    #: lapses ``concurrency_duration`` seconds after its task was made ready.
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    concurrency_duration: float = 300.0
    on_conflict: OnConflict = OnConflict.BLOCK
    #: Declared with ``register_external_task``: no worker runs it; outside processes claim it over
    #: HTTP (``POST /tasks/claim``) and report its outcome (its ``function`` only carries the
    #: declared parameters, and raises if called).
    external: bool = False

    def retry_delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (1 for the first retry)."""
        return compute_retry_delay(
            self.backoff_strategy, self.retry_delay, self.max_retry_delay, attempt, rng
        )

    def after_failure(
        self, retry_attempt: int, retryable: bool, rng: random.Random | None = None
    ) -> tuple[bool, float, bool]:
        """What follows a failed attempt (``retry_attempt`` retries made so far): ``(retry, delay
        seconds, dead_letter)``. A retryable failure retries with backoff while retries remain;
        anything else, or an exhausted budget, fails (into the DLQ under ``DeadLetterPolicy.SAVE``)."""
        if retryable and retry_attempt < self.max_retries:
            return True, self.retry_delay_for(retry_attempt + 1, rng), False
        return False, 0.0, self.dead_letter_policy is DeadLetterPolicy.SAVE

    def is_expected(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one the task asked to retry on."""
        return bool(self.expected_exceptions) and isinstance(exc, self.expected_exceptions)


def compute_retry_delay(
    strategy: BackoffStrategy,
    base: float,
    cap: float,
    attempt: int,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    constant: ``base``; linear: ``base * attempt``; exponential: ``base * 2**attempt``;
    exponential_jitter: uniform in ``[0, base * 2**attempt]``. Every strategy is capped at ``cap``.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if strategy is BackoffStrategy.CONSTANT:
        delay = base
    elif strategy is BackoffStrategy.LINEAR:
        delay = base * attempt
    else:
        # Cap the exponent so huge attempt numbers cannot overflow a float.
        delay = base * 2.0 ** min(attempt, 60)
        if strategy is BackoffStrategy.EXPONENTIAL_JITTER:
            delay = (rng or random).uniform(0.0, min(delay, cap))
    return max(0.0, min(delay, cap))
