"""Pure decisions the worker makes about a finished attempt (unit-tested without Redis)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from jobbers.models.task_config import DeadLetterPolicy, ShutdownPolicy, TaskConfig


@dataclass(frozen=True)
class AfterError:
    """What to do after an attempt raised: retry after ``delay`` seconds, or fail."""

    retry: bool
    delay: float = 0.0
    dead_letter: bool = False


def decide_after_error(
    config: TaskConfig, retry_attempt: int, exc: BaseException, rng: random.Random | None = None
) -> AfterError:
    """Expected exceptions and timeouts retry with backoff while retries remain; anything else,
    or an exhausted budget, fails (into the DLQ under ``DeadLetterPolicy.SAVE``)."""
    retryable = isinstance(exc, TimeoutError | asyncio.TimeoutError) or config.is_expected(exc)
    if retryable and retry_attempt < config.max_retries:
        return AfterError(retry=True, delay=config.retry_delay_for(retry_attempt + 1, rng))
    return AfterError(retry=False, dead_letter=config.dead_letter_policy is DeadLetterPolicy.SAVE)


def shutdown_action(config: TaskConfig | None) -> ShutdownPolicy:
    """The policy applied to a running task when its worker is asked to stop."""
    return config.on_shutdown if config else ShutdownPolicy.STOP


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(type name, message) as stored in the error history."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not str(exc):
        return "TimeoutError", "task exceeded its timeout"
    return type(exc).__name__, str(exc)
