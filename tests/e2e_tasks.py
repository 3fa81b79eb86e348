"""Task module loaded by worker processes in the end-to-end and fault tests."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from jobbers.context import task
from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy
from jobbers.recurring_entries import recurring
from jobbers.registry import register_task
from jobbers.workflows import signature

# The wf_* tasks take any number of lost leases (max_stalls): the workflow fault tests kill
# their workers again and again.

#: Executions are appended here (one line per run) so tests can count them.
RUN_LOG = os.environ.get("E2E_RUN_LOG", "")


def _record(label: str) -> None:
    if RUN_LOG:
        with open(RUN_LOG, "a") as f:
            f.write(f"{task.id} {label} {os.getpid()}\n")


@register_task(name="noop")
async def noop(**kwargs: object) -> None:
    _record("noop")


@register_task(name="nap")
async def nap(seconds: float = 0.5) -> str:
    _record("nap")
    await asyncio.sleep(seconds)
    return "rested"


@register_task(name="nap_once")
async def nap_once(seconds: float = 30.0) -> str:
    """Naps on its first execution only: a re-run after its worker's crash finishes at once."""
    first = not (RUN_LOG and Path(RUN_LOG).exists() and task.id in Path(RUN_LOG).read_text())
    _record("nap_once")
    if first:
        await asyncio.sleep(seconds)
    return "rested"


@register_task(name="block_first_time")
async def block_first_time(marker: str, seconds: float = 1.5) -> int:
    """Blocks the whole worker (no awaits) on its first execution only."""
    _record("block")
    if not Path(marker).exists():
        Path(marker).write_text("x")
        time.sleep(seconds)
    return os.getpid()


@register_task(name="suicide", dead_letter_policy=DeadLetterPolicy.SAVE, max_stalls=1)
async def suicide() -> None:
    """Kills its own worker every time."""
    _record("suicide")
    os.kill(os.getpid(), signal.SIGKILL)


@register_task(name="stop_policy", on_shutdown="stop", dead_letter_policy=DeadLetterPolicy.SAVE)
async def stop_policy(seconds: float = 5) -> str:
    _record("stop")
    await asyncio.sleep(seconds)
    return "finished"


@register_task(name="resubmit_policy", on_shutdown="resubmit")
async def resubmit_policy(seconds: float = 5) -> str:
    _record("resubmit")
    await asyncio.sleep(seconds)
    return "finished"


@register_task(name="continue_policy", on_shutdown="continue")
async def continue_policy(seconds: float = 1) -> str:
    _record("continue")
    await asyncio.sleep(seconds)
    return "finished"


@register_task(name="flaky", max_retries=2, retry_delay=0.1, backoff_strategy=BackoffStrategy.CONSTANT,
               expected_exceptions=(ConnectionError,), dead_letter_policy=DeadLetterPolicy.SAVE)
async def flaky() -> None:
    _record("flaky")
    raise ConnectionError("upstream timed out")


@register_task(name="hangs", max_heartbeat_interval=0.3)
async def hangs() -> None:
    """Heartbeats once, then goes silent (but keeps awaiting, so its lease stays renewed)."""
    task.heartbeat()
    await asyncio.sleep(30)


@register_task(name="chatty")
async def chatty() -> None:
    """Logs from inside its execution (the log record must carry the task's identity)."""
    logging.getLogger("e2e.chatty").warning("halfway through")


@register_task(name="times_out", timeout=0.05, max_retries=0, dead_letter_policy=DeadLetterPolicy.SAVE)
async def times_out() -> None:
    """Always exceeds its timeout (fails with TimeoutError, dead-lettered)."""
    _record("times_out")
    await asyncio.sleep(5)


@register_task(name="fails", max_retries=0, dead_letter_policy=DeadLetterPolicy.SAVE)
async def fails(reason: str = "bad input") -> None:
    """Always raises ValueError (fails at once, dead-lettered)."""
    _record("fails")
    raise ValueError(reason)


@register_task(name="span")
async def span(seconds: float = 0.01) -> int:
    """Sleeps, then records when this execution started and ended (to find overlapping runs)."""
    started = time.time()
    await asyncio.sleep(seconds)
    if RUN_LOG:
        with open(RUN_LOG, "a") as f:
            f.write(f"{task.id} span {os.getpid()} {started:.6f} {time.time():.6f}\n")
    return os.getpid()


@register_task(name="nap_spans")
async def nap_spans(seconds: float = 15.0) -> str:
    """Naps, recording when each execution begins and when it ends (completed or interrupted), so a
    test can tell whether two executions of one task overlapped."""
    _record("nap_spans")
    try:
        await asyncio.sleep(seconds)
    finally:
        _record("nap_spans_end")
    return "rested"


@register_task(name="keyed_nap", concurrency_key="account:{account_id}", concurrency_limit=1,
               concurrency_duration=60)
async def keyed_nap(account_id: int, seconds: float = 0.3) -> float:
    """At most one per account runs at once; returns when it started (epoch seconds)."""
    started = time.time()
    _record("keyed")
    await asyncio.sleep(seconds)
    return started


# A recurring entry declared next to its task; stored when a worker of this module starts (only
# in the tests that ask for it: every other test counts exactly the runs it submitted).
if os.environ.get("E2E_RECURRING"):
    recurring(
        "e2e-every-second",
        "recurring_tick",
        every=1,
        params={"label": "tick"},
        priority=5,
        description="fires every second in the end-to-end tests",
    )


@register_task(name="recurring_tick")
async def recurring_tick(label: str) -> str:
    _record("recurring_tick")
    return label


@register_task(name="wf_step", max_stalls=1000)
async def wf_step(
    node: str, parents: dict[str, object] | None = None, err: dict[str, object] | None = None
) -> dict[str, object]:
    """A workflow node: records its run, returns its id and the parents whose results it got (and
    the failed parent's node, on an error edge)."""
    _record("wf_step")
    out: dict[str, object] = {"node": node, "parents": sorted(parents or {})}
    if err is not None:
        out["failed"] = err["node"]
    return out


@register_task(name="wf_flaky", max_retries=3, max_stalls=1000, retry_delay=0.3, backoff_strategy=BackoffStrategy.CONSTANT,
               expected_exceptions=(ConnectionError,), dead_letter_policy=DeadLetterPolicy.SAVE)
async def wf_flaky(fail_times: int) -> int:
    """Fails (to be retried) its first ``fail_times`` attempts, then completes with its attempt."""
    _record("wf_flaky")
    if task.retry_attempt < fail_times:
        raise ConnectionError(f"attempt {task.retry_attempt} failed")
    return task.retry_attempt


@register_task(name="wf_until_fixed", max_retries=0, max_stalls=1000, dead_letter_policy=DeadLetterPolicy.SAVE)
async def wf_until_fixed(marker: str) -> str:
    """Fails (dead-lettered) until file ``marker`` exists."""
    _record("wf_until_fixed")
    if not Path(marker).exists():
        raise ValueError(f"{marker} is missing")
    return "fixed"


@register_task(name="wf_fan", max_stalls=1000)
async def wf_fan(pages: int) -> int:
    """Spawns one wf_page per page and a wf_sum after them (written when this completes)."""
    task.fan_out([signature("wf_page", page=i) for i in range(pages)], signature("wf_sum").results("parts"))
    return pages


@register_task(name="wf_page", max_stalls=1000)
async def wf_page(page: int, parents: dict[str, object] | None = None) -> int:
    return page * 10


@register_task(name="wf_sum", max_stalls=1000)
async def wf_sum(parts: dict[str, int]) -> int:
    return sum(parts.values())


@register_task(name="blocks_loop")
async def blocks_loop(seconds: float = 5.0) -> str:
    """Blocks the whole event loop (no awaits) for ``seconds``, every time it runs."""
    _record("blocks_loop")
    time.sleep(seconds)  # noqa: ASYNC251 - the point of this task
    return "unblocked"


@register_task(name="hangs_the_loop", max_heartbeat_interval=1.0)
async def hangs_the_loop(seconds: float = 6.0) -> str:
    """Blocks the event loop far past its ``max_heartbeat_interval`` without a heartbeat: hung."""
    _record("hangs_the_loop")
    time.sleep(seconds)  # noqa: ASYNC251 - the point of this task
    return "woke up"


@register_task(name="progress_steps")
async def progress_steps(steps: int = 3, pause: float = 0.4) -> int:
    for i in range(steps):
        task.progress(i + 1, steps, f"step {i + 1}")
        await asyncio.sleep(pause)
    return steps
