"""What the worker holds for each running task, and why it may interrupt one."""

from __future__ import annotations

import asyncio
import enum
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from jobbers.context import RunningTask
from jobbers.models.task_config import DeadLetterPolicy, TaskConfig
from jobbers.state.store import ClaimedTask, StallConfig


class StopReason(enum.Enum):
    """Why the worker interrupted a running task."""

    USER_CANCEL = "user_cancel"
    LEASE_LOST = "lease_lost"
    SHUTDOWN_STOP = "shutdown_stop"
    SHUTDOWN_RESUBMIT = "shutdown_resubmit"


@dataclass
class Running:
    """A task this worker holds: its claim, its config, its handle and asyncio task."""

    claim: ClaimedTask
    config: TaskConfig | None
    handle: RunningTask
    atask: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float = 0.0  # monotonic, when the attempt ended
    claimed_at_ms: int = 0  # Redis time of the claim
    began: bool = False  # the asyncio task has taken its first step

    def interrupt(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        # A task cancelled before its first step never runs its body (nor its finally), so one
        # not yet begun is left to see ``stop_reason`` when it starts.
        if self.atask is not None and self.began and not self.atask.done():
            self.atask.cancel()


def stall_config(config: TaskConfig) -> StallConfig:
    interval = config.max_heartbeat_interval
    return StallConfig(
        max_heartbeat_seconds=interval.total_seconds() if interval else 0.0,
        max_stalls=config.max_stalls,
        dead_letter=config.dead_letter_policy is DeadLetterPolicy.SAVE,
    )


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
