"""Pure decisions the worker makes about a finished attempt (unit-tested without Redis)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from jobbers.models.task_config import ShutdownPolicy, TaskConfig


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
    retry, delay, dead_letter = config.after_failure(retry_attempt, retryable, rng)
    return AfterError(retry=retry, delay=delay, dead_letter=dead_letter)


def shutdown_action(config: TaskConfig | None) -> ShutdownPolicy:
    """The policy applied to a running task when its worker is asked to stop."""
    return config.on_shutdown if config else ShutdownPolicy.STOP


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(type name, message) as stored in the error history."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not str(exc):
        return "TimeoutError", "task exceeded its timeout"
    return type(exc).__name__, str(exc)
