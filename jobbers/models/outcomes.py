"""What a request about existing tasks did to each of them, and how an attempt goes back to run."""

from __future__ import annotations

from enum import StrEnum


class SubmitKind(StrEnum):
    """Per submitted task: written now, found (same id or Idempotency-Key), or refused because
    its Idempotency-Key was used for a different request."""

    NEW = "new"
    EXISTING = "existing"
    CONFLICT = "conflict"


class CancelKind(StrEnum):
    """Per task of a cancel request (the ``outcome`` field of the API's answer)."""

    #: It was queued or scheduled, and is ``cancelled`` now.
    CANCELLED = "cancelled"
    #: It is running; the request is recorded and its worker stops it.
    REQUESTED = "requested"
    NOT_FOUND = "not_found"
    #: It is in a status that cannot be cancelled.
    CONFLICT = "conflict"

    @property
    def accepted(self) -> bool:
        """Whether the cancellation took (counted in ``cancellations_requested``)."""
        return self in (CancelKind.CANCELLED, CancelKind.REQUESTED)


class ResubmitKind(StrEnum):
    """Per task of a dead letter resubmit request."""

    RESUBMITTED = "resubmitted"
    #: Not in the dead letter queue.
    NOT_FOUND = "not_found"
    #: In the DLQ but not ``failed`` or ``stalled``.
    CONFLICT = "conflict"
    #: Its queue was deleted since (decided by the manager, which knows the queue config).
    QUEUE_NOT_FOUND = "queue_not_found"


class RetryKind(StrEnum):
    """How an attempt that does not end its task sends it back (the alternative to a terminal status)."""

    #: The attempt raised a retryable error: ``retry_attempt`` grows, the task waits out its delay.
    RETRY = "retry"
    #: A shutting-down worker puts the task back as it was (``on_shutdown=resubmit``); not a retry.
    REQUEUE = "requeue"
