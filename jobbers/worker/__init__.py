"""The worker: claims tasks under leases, runs them, writes their outcomes."""

from jobbers.worker.worker import Worker

__all__ = ["Worker"]
