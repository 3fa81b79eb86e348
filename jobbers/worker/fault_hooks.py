"""Test hooks: faults a real worker process injects when the fault tests ask for them.

``JOBBERS_TEST_FAULT=exit_after_claim`` makes the worker exit abruptly right after a claim that
got tasks, before running any of them, to prove that claimed-but-never-run tasks are recovered.
Never set it outside tests.
"""

from __future__ import annotations

import os

#: Whether this process was told to die inside its claim window (read once, at import).
EXIT_AFTER_CLAIM = os.environ.get("JOBBERS_TEST_FAULT", "") == "exit_after_claim"


def exit_inside_claim_window() -> None:
    """End the process at once, as a crash would: no cleanup, no outcome written."""
    os._exit(17)
