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


class TaskNotFoundError(JobbersError):
    """No task has this id."""


class TaskConflictError(JobbersError):
    """The task is not in a state that allows the requested change."""


class QueueNotFoundError(JobbersError):
    """The queue does not exist in the configuration store."""


class TaskModuleError(JobbersError):
    """The task module given on the command line could not be loaded."""
