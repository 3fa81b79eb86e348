"""Run ``jobbers_dev`` as a user does (a real process, stopped with Ctrl-C) and read what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

#: Variables a developer's shell may carry that would change what jobbers_dev does.
JOBBERS_VARIABLES = ("REDIS_URL", "SQL_PATH", "WORKER_TTL", "MANAGER_HOST", "MANAGER_PORT", "PYTHONPATH")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without Jobbers settings (as on a fresh machine), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in JOBBERS_VARIABLES}
    return {**env, "OTEL_SDK_DISABLED": "true", **extra}


class DevProcess:
    """A running ``jobbers_dev``; its output is collected as it comes."""

    def __init__(self, command: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_for_line(self, pattern: str, seconds: float = 90) -> re.Match[str]:
        """The first output line matching ``pattern``; fails if the process exits or time runs out."""
        deadline = time.monotonic() + seconds
        while True:
            for line in list(self._lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"jobbers_dev exited with {self.proc.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in time:\n{self.output}")
            time.sleep(0.05)

    def stop(self, seconds: float = 60) -> int:
        """Ctrl-C, as a user would; returns the exit status once everything has stopped."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"jobbers_dev did not stop in {seconds}s:\n{self.output}") from None
        self._reader.join(5)
        return code
