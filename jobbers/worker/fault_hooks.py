"""Test hooks: faults a real worker process injects when the fault tests ask for them.

``JOBBERS_TEST_FAULT=exit_after_claim`` makes the worker exit abruptly right after a claim that
got tasks, before running any of them, to prove that claimed-but-never-run tasks are recovered.
``JOBBERS_TEST_FAULT=exit_after_recurring_submit`` makes the scheduler exit the same way right
after submitting a recurring entry's tasks, before it records the fire time, to prove the next
scheduler submits them no second time. ``JOBBERS_TEST_FAULT=kill_at_step:<n>`` makes a worker
SIGKILL itself at the n-th step of its work, counting three steps per batch: a claim that got
tasks (claimed, not run), outcomes about to be written (run, not recorded: the tasks run again),
and outcomes just written (recorded, nothing after it done); and two around the write of a task
that fanned out (its new nodes and its completion, written alone): just before and just after.
The workflow fault tests start worker after worker with n = 1, 2, 3 ... so that every step of a
run is followed by a kill. ``JOBBERS_TEST_FAULT=kill_relay_at:<n>`` makes a scheduler SIGKILL
itself at its n-th relay of workflow outbox entries, after delivering them and before deleting
them, so the next scheduler delivers them again.
Never set any of them outside tests.
"""

from __future__ import annotations

import os
import signal

#: Whether this process was told to die inside its claim window (read once, at import).
EXIT_AFTER_CLAIM = os.environ.get("JOBBERS_TEST_FAULT", "") == "exit_after_claim"
#: Whether this process was told to die between a recurring submit and recording its fire time.
EXIT_AFTER_RECURRING_SUBMIT = os.environ.get("JOBBERS_TEST_FAULT", "") == "exit_after_recurring_submit"

_fault = os.environ.get("JOBBERS_TEST_FAULT", "")
#: The worker step to SIGKILL itself at (0: never).
KILL_AT_STEP = int(_fault.removeprefix("kill_at_step:")) if _fault.startswith("kill_at_step:") else 0
_steps_taken = 0
#: The outbox relay to SIGKILL the scheduler at, after its deliveries (0: never).
KILL_RELAY_AT = int(_fault.removeprefix("kill_relay_at:")) if _fault.startswith("kill_relay_at:") else 0
_relays = 0


def relay_delivered() -> None:
    """Count one relay whose entries were delivered but not yet deleted; SIGKILL at ``KILL_RELAY_AT``."""
    global _relays
    _relays += 1
    if _relays == KILL_RELAY_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def step_taken() -> None:
    """Count one worker step (see ``KILL_AT_STEP``); SIGKILL this process at the chosen one."""
    global _steps_taken
    _steps_taken += 1
    if _steps_taken == KILL_AT_STEP:
        os.kill(os.getpid(), signal.SIGKILL)


def exit_abruptly() -> None:
    """End the process at once, as a crash would: no cleanup, nothing more written."""
    os._exit(17)


def exit_inside_claim_window() -> None:
    """End the process at once, as a crash would: no cleanup, no outcome written."""
    os._exit(17)
