import asyncio
import random

import pytest

from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy, TaskConfig, compute_retry_delay
from jobbers.worker.decisions import decide_after_error, describe_exception


async def _fn() -> None:
    return None


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (BackoffStrategy.CONSTANT, [10, 10, 10, 10]),
        (BackoffStrategy.LINEAR, [10, 20, 30, 40]),
        (BackoffStrategy.EXPONENTIAL, [20, 40, 80, 160]),
    ],
)
def test_backoff_delay_per_strategy_and_attempt(strategy: BackoffStrategy, expected: list[float]) -> None:
    assert [compute_retry_delay(strategy, 10, 1000, n) for n in range(1, 5)] == expected


@pytest.mark.parametrize("strategy", list(BackoffStrategy))
def test_every_strategy_is_capped_at_max_retry_delay(strategy: BackoffStrategy) -> None:
    for attempt in (1, 5, 50, 10_000):
        assert compute_retry_delay(strategy, 30, 300, attempt, random.Random(attempt)) <= 300


def test_exponential_jitter_stays_within_zero_and_the_exponential_bound() -> None:
    rng = random.Random(7)
    delays = [compute_retry_delay(BackoffStrategy.EXPONENTIAL_JITTER, 10, 1000, 3, rng) for _ in range(500)]
    assert all(0 <= d <= 80 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # really random, not constant
    assert min(delays) < 20 and max(delays) > 60


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        compute_retry_delay(BackoffStrategy.CONSTANT, 1, 1, 0)


def _config(**kw: object) -> TaskConfig:
    return TaskConfig(name="t", function=_fn, **kw)  # type: ignore[arg-type]


def test_expected_exception_retries_with_backoff_while_retries_remain() -> None:
    cfg = _config(max_retries=3, retry_delay=2, backoff_strategy=BackoffStrategy.LINEAR,
                  expected_exceptions=(ConnectionError,))
    assert decide_after_error(cfg, 0, ConnectionError()).delay == 2
    assert decide_after_error(cfg, 2, ConnectionError()).delay == 6
    exhausted = decide_after_error(cfg, 3, ConnectionError())
    assert not exhausted.retry and not exhausted.dead_letter


def test_unexpected_exception_fails_at_once_even_with_retries_left() -> None:
    cfg = _config(max_retries=5, expected_exceptions=(ConnectionError,), dead_letter_policy=DeadLetterPolicy.SAVE)
    decision = decide_after_error(cfg, 0, ValueError("bug"))
    assert not decision.retry and decision.dead_letter


def test_timeout_is_retried_like_an_expected_exception() -> None:
    cfg = _config(max_retries=1, retry_delay=1, backoff_strategy=BackoffStrategy.CONSTANT)
    assert decide_after_error(cfg, 0, asyncio.TimeoutError()).retry
    assert describe_exception(TimeoutError()) == ("TimeoutError", "task exceeded its timeout")
