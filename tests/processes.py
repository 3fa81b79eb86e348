"""Run real jobbers processes (the installed console scripts) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{name} is not installed next to {sys.executable}; run `pip install -e .`")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ManagerProcess(NamedTuple):
    proc: subprocess.Popen[bytes]
    url: str


class Platform:
    """Environment shared by every process of one test, plus the processes it started."""

    def __init__(self, redis_url: str, key_prefix: str, sql_path: str, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.run_log = tmp / "runs.log"
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": key_prefix,
            "SQL_PATH": sql_path,
            "WORKER_TTL": "0",
            "WORKER_LEASE_SECONDS": "1.2",  # short, yet safe on a loaded 2-core machine
            "WORKER_REFRESH_INTERVAL": "0.2",
            "WORKER_SHUTDOWN_GRACE": "3",
            "SCHEDULER_POLL_INTERVAL": "0.2",
            "SCHEDULER_BATCH_SIZE": "100",
            "PYTHONPATH": str(ROOT),
            "E2E_RUN_LOG": str(tmp / "runs.log"),
            "LOG_LEVEL": "INFO",
            # No telemetry export unless a test asks for it (tests/test_telemetry.py does).
            "OTEL_SDK_DISABLED": "true",
            **env,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def start(self, name: str, *args: str, unset: tuple[str, ...] = (), **env: str) -> subprocess.Popen[bytes]:
        """Start ``name`` with the platform's environment, plus ``env``, minus the variables ``unset``."""
        self._n += 1
        log = open(self.tmp / f"{self._n:02d}-{name}.log", "wb")  # noqa: SIM115 - lives with the process
        environment = {k: v for k, v in {**self.env, **env}.items() if k not in unset}
        proc = subprocess.Popen([script(name), *args], env=environment, stdout=log, stderr=log)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start("jobbers_worker", "tests.e2e_tasks", **env)

    def scheduler(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start("jobbers_scheduler", **env)

    def manager(self, timeout: float = 20, **env: str) -> ManagerProcess:
        """Start ``jobbers_manager tests.e2e_tasks`` on a free local port; return once /healthz answers."""
        port = free_port()
        proc = self.start(
            "jobbers_manager", "tests.e2e_tasks", MANAGER_HOST="127.0.0.1", MANAGER_PORT=str(port), **env
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return ManagerProcess(proc, url)
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"manager did not come up:\n{self.log_of(proc)}")
            time.sleep(0.05)

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([script(name), *args], env=self.env, capture_output=True, timeout=60, check=True)

    def runs(self) -> list[tuple[str, str]]:
        """(task id, label) for every execution recorded by the e2e tasks."""
        if not self.run_log.exists():
            return []
        return [tuple(line.split()[:2]) for line in self.run_log.read_text().splitlines()]  # type: ignore[misc]

    @staticmethod
    def log_of(proc: subprocess.Popen[bytes]) -> str:
        return Path(proc.log_path).read_text()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with_suppress_kill(proc, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def with_suppress_kill(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


@contextmanager
def platform(redis_url: str, key_prefix: str, sql_path: str, tmp: Path, **env: str) -> Iterator[Platform]:
    p = Platform(redis_url, key_prefix, sql_path, tmp, **env)
    try:
        yield p
    finally:
        p.stop_all()
