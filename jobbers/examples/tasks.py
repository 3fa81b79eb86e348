"""Example tasks: what `jobbers_dev` runs by default, and the README quick start uses.

Import it as `jobbers.examples.tasks` (`jobbers_worker jobbers.examples.tasks`)."""

from __future__ import annotations

import asyncio
import datetime as dt

from jobbers.context import task
from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy
from jobbers.registry import REQUIRED, register_external_task, register_task

# An external type: no worker runs it. An agent or another service claims it (POST /tasks/claim)
# or completes it directly (POST /task/{id}/complete, or the MCP server's complete_task).
register_external_task("review_file", version=1, params={"path": REQUIRED, "instructions": ""}, max_retries=2,
                       retry_delay=1.0)  # fmt: skip


@register_task(name="add", version=1)
async def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


@register_task(name="noop", version=1)
async def noop(**kwargs: object) -> None:
    """Do nothing (used by the benchmarks)."""


@register_task(
    name="generate_report",
    version=1,
    max_retries=3,
    retry_delay=0.2,
    backoff_strategy=BackoffStrategy.EXPONENTIAL_JITTER,
    max_retry_delay=2,
    dead_letter_policy=DeadLetterPolicy.SAVE,
    max_heartbeat_interval=dt.timedelta(minutes=5),
)
async def generate_report(**kwargs: object) -> dict[str, object]:
    """A long task that heartbeats as it goes."""
    report_id = kwargs["report_id"]
    for _section in range(int(kwargs.get("sections", 3))):  # type: ignore[call-overload]
        await asyncio.sleep(float(kwargs.get("section_seconds", 0.05)))  # type: ignore[arg-type]
        task.heartbeat()  # tell Jobbers this task is still alive
    return {"url": f"/reports/{report_id}.pdf"}


@register_task(
    name="flaky",
    version=1,
    max_retries=2,
    retry_delay=0.1,
    backoff_strategy=BackoffStrategy.CONSTANT,
    dead_letter_policy=DeadLetterPolicy.SAVE,
    expected_exceptions=(ConnectionError,),
)
async def flaky(**kwargs: object) -> None:
    """Always fails with an expected exception: retried, then dead-lettered."""
    raise ConnectionError("upstream timed out")


@register_task(name="sleep", version=1)
async def sleep(seconds: float = 1.0) -> str:
    """Sleep for a while (for cancellation demos)."""
    await asyncio.sleep(seconds)
    return "slept"
