"""Our own exception types; the manager maps each to one HTTP status in one place."""

from __future__ import annotations


class JobbersError(Exception):
    """Base of every error Jobbers raises on purpose."""


class TaskRegistrationError(JobbersError):
    """A task was registered twice under the same (name, version), or with bad options."""


class UnknownTaskError(JobbersError):
    """No task is registered under the requested (name, version)."""


class InvalidParamsError(JobbersError):
    """The params do not fit the registered task's signature."""


class WorkflowGraphError(JobbersError, ValueError):
    """A workflow graph that cannot run (a cycle, an edge from an unknown node, ...); ``node`` names
    the node at fault and ``field`` the part of it (``id``, ``after``, ``on_error_of``, ``queue``)."""

    def __init__(self, node: str, message: str, field: str = "id") -> None:
        super().__init__(f"node {node!r}: {message}")
        self.node = node
        self.reason = message
        self.field = field


class NotFoundError(JobbersError):
    """The thing named in a request (a task, queue, role, dead letter entry) does not exist."""


class ConflictError(JobbersError):
    """The request conflicts with the current state (it exists already, or is in the wrong state)."""


class TaskNotFoundError(NotFoundError):
    """No task has this id."""


class TaskConflictError(ConflictError):
    """The task is not in a state that allows the requested change."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow run has this id."""


class WorkflowConflictError(ConflictError):
    """The workflow run has ended: it cannot be cancelled."""


class IdempotencyConflictError(ConflictError):
    """An Idempotency-Key was used before for a different request (name, version, queue, params or
    schedule differ); nothing of the new request was written."""


class ConfigNotFoundError(NotFoundError):
    """No queue or role has this name."""


class ConfigExistsError(ConflictError):
    """A queue or role with this name exists already (create it with PUT to replace it)."""


class QueueNotEmptyError(ConflictError):
    """The queue still holds waiting tasks, which would be stranded if it were deleted."""


class DefaultRoleError(ConflictError):
    """The ``default`` role always exists: it can be given queues or reset, not deleted."""


class InvalidCursorError(JobbersError):
    """A pagination cursor that this API did not hand out (or from another listing)."""


class QueueNotFoundError(JobbersError):
    """The queue does not exist in the configuration store."""


class TaskModuleError(JobbersError):
    """The task module given on the command line could not be loaded."""


class ConfigurationError(JobbersError):
    """A setting or argument cannot work; the message names it and says what would."""


class StartupError(JobbersError):
    """A process cannot start (a service is unreachable, a port is taken, a file cannot be written);
    the message is the one-line reason the command prints before it exits non-zero."""
