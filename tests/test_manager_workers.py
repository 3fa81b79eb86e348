"""``MANAGER_WORKERS``: the manager serves from several uvicorn worker processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.e2e import E2E


def worker_processes(pid: int) -> set[int]:
    """The uvicorn worker processes of manager ``pid``: its children started by multiprocessing's
    spawn (not its resource tracker), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.add(int(child))
    return found


def test_manager_workers_start_that_many_processes_each_serving_the_task_module(e2e: E2E) -> None:
    manager = e2e.platform.manager(MANAGER_WORKERS="2")
    deadline = time.monotonic() + 30
    while len(workers := worker_processes(manager.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == 2, e2e.platform.log_of(manager.proc)

    answered = []
    for _ in range(40):  # new connections, spread by the kernel over both processes' accept queues
        with httpx.Client(base_url=manager.url, timeout=10) as http:
            answered.append(http.post("/tasks", json={"name": "nap", "params": {"seconds": 0}}).status_code)
            assert http.get("/readyz").status_code == 200

    assert answered == [201] * 40  # every worker process knows the task module's tasks
    manager.proc.send_signal(signal.SIGTERM)
    assert manager.proc.wait(30) == 0
    assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
               for pid in workers)  # fmt: skip
