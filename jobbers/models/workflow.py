"""The status of a workflow run."""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    """A run is ``running`` until every node has ended; then ``completed``, or ``failed`` when a
    node failed or stalled (even if an error edge handled it), or ``cancelled`` when it was
    cancelled."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
