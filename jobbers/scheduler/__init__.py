"""The scheduler: promotes due retry-delayed and scheduled tasks, and recovers expired leases."""

from jobbers.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]
