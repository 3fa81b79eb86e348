"""What every long-running process (worker, scheduler) does around its main loop: stop on
SIGTERM/SIGINT, stop its background tasks without letting one hold up the exit, and (a worker
under ``WORKER_RECYCLE=fork``) run its lifetimes in forked children of one loaded parent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: The signals that stop a process.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: A forked lifetime that crashed is replaced after this long, doubled at each crash in a row...
FIRST_RESTART_DELAY = 0.1
#: ... up to this long.
MAX_RESTART_DELAY = 5.0
#: A lifetime that exits cleanly, or lives at least this long, resets that delay.
HEALTHY_LIFETIME_SECONDS = 10.0


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    """Call ``request_stop`` on SIGTERM and SIGINT (where the event loop can handle signals).

    In a child of ``run_forked_lifetimes`` the signals were blocked from the fork until now; once
    the handlers are installed they are let through, and one that came meanwhile is handled now.
    """
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


async def settle(tasks: list[asyncio.Task[None]], seconds: float = 2.0) -> None:
    """Cancel background tasks and wait for them to finish, but never let one hold up the exit."""
    for t in tasks:
        t.cancel()
    _done, stuck = await asyncio.wait(tasks, timeout=seconds)
    for t in stuck:
        log.warning("background task %s did not stop within %.1fs", t.get_name(), seconds)


def describe_wait_status(status: int) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def code_of(status: int) -> int:
    """The exit status a shell shows for a child's wait status (128 + N when killed by signal N)."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


class Turn:
    """A lifetime's place in line: ``wait()`` until the lifetime before it has ended, run, then
    ``done()`` to let the next one begin. A lifetime not run by ``run_forked_lifetimes`` has its
    turn at once."""

    def __init__(self, go: int | None = None, finished: int | None = None) -> None:
        self._go = go
        self._finished = finished

    @property
    def queued(self) -> bool:
        """Whether this lifetime may have to wait for its turn (it was forked to follow another)."""
        return self._go is not None

    def wait(self) -> bool:
        """Block until it is this lifetime's turn; False when it is told to stand down instead.

        Blocking is fine: it comes before the lifetime runs anything on its event loop."""
        if self._go is None:
            return True
        go, self._go = self._go, None
        try:
            return os.read(go, 1) == b"\1"
        finally:
            os.close(go)

    def done(self) -> None:
        """This lifetime's work is over (what is left is its exit): the next one may begin."""
        if self._finished is not None:
            with contextlib.suppress(OSError):
                os.write(self._finished, b"\0")
            os.close(self._finished)
            self._finished = None


@dataclass(eq=False)
class _Child:
    pid: int
    go: int  # written to (or closed) to start (or stand down) the child
    finished: int  # readable once the child's work is over
    started: float = field(default_factory=time.monotonic)
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for fd in (self.go, self.finished):
                with contextlib.suppress(OSError):
                    os.close(fd)


def run_forked_lifetimes(lifetime: Callable[[Turn], int], final_statuses: tuple[int, ...] = ()) -> int:
    """Run ``lifetime(turn)`` in forked children, one after another, until SIGTERM/SIGINT; return
    the exit status of the child that was running then.

    The caller loads everything before (the parent holds no event loop, connection or thread: each
    child makes its own), so a lifetime costs a fork, not an interpreter start. While one child
    runs, the next is forked and prepares its start (``turn.wait()`` holds it there); it begins as
    soon as the running one calls ``turn.done()`` (or exits), so one runs at a time and a recycle
    costs little more than what a lifetime does after ``turn.wait()``.

    SIGTERM/SIGINT are passed on to the running child; the waiting one is told to stand down; the
    parent exits once both have, with the running child's status (128 + N if signal N killed it).
    The signals stay blocked in a child until its ``stop_on_signals`` (one that arrives meanwhile
    waits for it). A child that exits with a status in ``final_statuses`` (a setting must change)
    ends the parent with that status. Any other unfinished end is a crash, logged; the next child
    begins after ``FIRST_RESTART_DELAY``, doubling up to ``MAX_RESTART_DELAY`` while crashes
    follow each other (what the crashed child held is recovered from Redis when its leases expire).
    """
    stop_signal: int | None = None
    running: _Child | None = None
    waiting: _Child | None = None
    children: dict[int, _Child] = {}
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)

    def wake() -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(wake_write, b"\0")

    def on_stop(signum: int, _frame: object) -> None:
        nonlocal stop_signal
        stop_signal = signum
        if running is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signum)
        wake()

    handled = (*STOP_SIGNALS, signal.SIGCHLD)
    defaults = {
        sig: signal.signal(sig, on_stop if sig in STOP_SIGNALS else lambda *_: wake()) for sig in handled
    }

    def fork() -> _Child:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            go_read, go_write = os.pipe()
            finished_read, finished_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                for fd in (wake_read, wake_write, go_write, finished_read):
                    os.close(fd)
                for other in children.values():
                    other.close()
                _run_child(lambda: lifetime(Turn(go_read, finished_write)), defaults)
            os.close(go_read)
            os.close(finished_write)
            children[pid] = child = _Child(pid, go_write, finished_read)
            return child
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def begin(child: _Child) -> None:
        with contextlib.suppress(OSError):
            os.write(child.go, b"\1")

    final: int | None = None  # a status that ends the parent whatever the running child's is
    delay = FIRST_RESTART_DELAY
    resume_at = 0.0  # when the next child may begin (later after a crash)
    status = 0
    try:
        while children or (stop_signal is None):
            if stop_signal is not None and waiting is not None:
                waiting.close()  # its turn.wait() reads end-of-file: it stands down
                waiting = None
            now = time.monotonic()
            if stop_signal is None:
                if running is None and now >= resume_at:
                    running, waiting, status = waiting or fork(), None, 0
                    begin(running)
                if waiting is None and now >= resume_at:
                    waiting = fork()
            watch = [wake_read] + ([running.finished] if running is not None and not running.closed else [])
            timeout = max(resume_at - now, 0) if now < resume_at and stop_signal is None else None
            readable, _, _ = select.select(watch, [], [], timeout)
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            if running is not None and running.finished in readable:
                finished = os.read(running.finished, 1)
                running.close()  # no longer watched; end-of-file: it exited (reaped below)
                if finished:  # its work is done: the waiting child begins
                    running, delay = None, FIRST_RESTART_DELAY
            while children:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                child = children.pop(pid)
                child.close()
                code = code_of(wait_status)
                if child is running:
                    running, status = None, wait_status
                    if stop_signal is not None:
                        continue
                    if code in final_statuses:
                        log.error(
                            "worker process %d %s; not replacing it", pid, describe_wait_status(wait_status)
                        )
                        return code
                    if code == 0 or time.monotonic() - child.started >= HEALTHY_LIFETIME_SECONDS:
                        delay = FIRST_RESTART_DELAY
                    if code != 0:
                        log.warning(
                            "worker process %d %s; the next begins in %.1f s",
                            pid, describe_wait_status(wait_status), delay,
                        )  # fmt: skip
                        resume_at, delay = time.monotonic() + delay, min(delay * 2, MAX_RESTART_DELAY)
                        status = 0  # none runs until then: a stop meanwhile stops nothing that failed
                elif child is waiting:
                    waiting = None
                    if stop_signal is None and code in final_statuses:
                        log.error("worker process %d %s; stopping", pid, describe_wait_status(wait_status))
                        on_stop(signal.SIGTERM, None)
                        final = code
                    elif stop_signal is None:
                        log.warning("waiting worker process %d %s", pid, describe_wait_status(wait_status))
                        resume_at, delay = time.monotonic() + delay, min(delay * 2, MAX_RESTART_DELAY)
                elif code != 0:
                    log.warning("worker process %d %s after its work", pid, describe_wait_status(wait_status))
    finally:
        for sig, handler in defaults.items():
            signal.signal(sig, handler)
        for child in children.values():
            child.close()
        os.close(wake_read)
        os.close(wake_write)
    return code_of(status) if final is None else final


def _run_child(lifetime: Callable[[], int], defaults: Mapping[signal.Signals, Any]) -> None:
    """In a forked child: restore the signals' handlers, run ``lifetime`` and exit with its status
    (without the parent's exit handlers, and without the interpreter's finalization)."""
    status = 1
    try:
        for sig, handler in defaults.items():
            signal.signal(sig, handler)
        status = lifetime()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
