"""Test hooks: faults a real worker process injects when the fault tests ask for them.

``JOBBERS_TEST_FAULT=exit_after_claim`` makes the worker exit abruptly right after a claim that
got tasks, before running any of them, to prove that claimed-but-never-run tasks are recovered.
``JOBBERS_TEST_FAULT=exit_after_recurring_submit`` makes the scheduler exit the same way right
after submitting a recurring entry's tasks, before it records the fire time, to prove the next
scheduler submits them no second time. Never set either outside tests.
"""

from __future__ import annotations

import os

#: Whether this process was told to die inside its claim window (read once, at import).
EXIT_AFTER_CLAIM = os.environ.get("JOBBERS_TEST_FAULT", "") == "exit_after_claim"
#: Whether this process was told to die between a recurring submit and recording its fire time.
EXIT_AFTER_RECURRING_SUBMIT = os.environ.get("JOBBERS_TEST_FAULT", "") == "exit_after_recurring_submit"


def exit_abruptly() -> None:
    """End the process at once, as a crash would: no cleanup, nothing more written."""
    os._exit(17)


def exit_inside_claim_window() -> None:
    """End the process at once, as a crash would: no cleanup, no outcome written."""
    os._exit(17)
