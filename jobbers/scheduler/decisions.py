"""Pure decisions the scheduler makes about its next pass (unit-tested without Redis)."""

from __future__ import annotations

from jobbers.state.records import Promotion


def seconds_until_next_pass(poll_interval: float, batch_size: int, promotions: list[Promotion]) -> float:
    """How long to sleep after a pass: until the earliest next due task, at most ``poll_interval``;
    no sleep at all when a queue filled its batch (more may be due right now)."""
    sleep = poll_interval
    for promotion in promotions:
        if promotion.promoted >= batch_size:
            return 0.0
        if promotion.next_due_ms is not None:
            sleep = min(sleep, max((promotion.next_due_ms - promotion.now_ms) / 1000, 0.0))
    return sleep
