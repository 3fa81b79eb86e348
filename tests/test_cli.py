"""The console scripts as a user meets them: what stops a command is one line and a non-zero exit
(never a traceback), and every ``--help`` lists the environment variables the command reads."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from jobbers.env_help import READS, UNSET_MEANS, settings_read_by
from jobbers.settings import Settings
from tests.e2e import E2E
from tests.processes import ROOT, free_port, script

COMMANDS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
#: A positional argument each command needs to get as far as reading its settings.
ARGS = {"jobbers_manager": ["tests.e2e_tasks"], "jobbers_worker": ["tests.e2e_tasks"], "jobbers": ["queues"]}


def run(command: str, *args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(command), *args],
        cwd=cwd,
        env={**os.environ, "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The single line a failing command printed, checked to be a reason and not a traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{command}: "), lines[0]
    return lines[0]


def test_every_console_script_is_covered() -> None:
    assert set(READS) == set(COMMANDS)


# -- what stops a command ------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_an_invalid_setting_names_the_variable_and_its_rule(command: str, tmp_path: Path) -> None:
    result = run(command, *ARGS.get(command, []), cwd=tmp_path, WORKER_CONCURRENT_TASKS="0")

    line = one_line_error(result, command)
    assert result.returncode == 2
    assert "WORKER_CONCURRENT_TASKS='0'" in line and "greater than or equal to 1" in line


def test_an_invalid_choice_lists_the_choices_and_a_secret_is_never_echoed(tmp_path: Path) -> None:
    line = one_line_error(run("jobbers_cleaner", cwd=tmp_path, LOG_FORMAT="yaml"), "jobbers_cleaner")
    assert "LOG_FORMAT='yaml'" in line and "'text' or 'json'" in line

    result = run("jobbers_openapi", str(tmp_path / "x.json"), cwd=tmp_path, MANAGER_MAX_BODY_BYTES="lots")
    assert "MANAGER_MAX_BODY_BYTES='lots'" in one_line_error(result, "jobbers_openapi")


def test_under_log_format_json_the_reason_is_a_json_record(tmp_path: Path) -> None:
    result = run("jobbers_migrate", cwd=tmp_path, LOG_FORMAT="json", SQL_PATH="sqlite:///x.db")

    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    record = json.loads(line)
    assert record["level"] == "CRITICAL"
    assert record["message"].startswith("jobbers_migrate: SQL_PATH 'sqlite:///x.db'")


def test_openapi_to_a_missing_directory_says_so(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "openapi.json"
    result = run("jobbers_openapi", str(target), cwd=tmp_path)

    assert result.returncode == 1
    assert one_line_error(result, "jobbers_openapi") == (
        f"jobbers_openapi: cannot write {target}: No such file or directory"
    )


def test_migrate_with_postgresql_down_says_which_database_and_why(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://jobbers:s3cret@127.0.0.1:{free_port()}/jobbers"
    result = run("jobbers_migrate", cwd=tmp_path, SQL_PATH=url)

    line = one_line_error(result, "jobbers_migrate")
    assert result.returncode == 1
    assert "cannot use the SQL database" in line and "refused" in line.lower()
    assert "s3cret" not in line and "jobbers:***@127.0.0.1" in line


@pytest.mark.parametrize(
    ("sql_path", "use"),
    [
        ("postgresql://jobbers@127.0.0.1:5432/jobbers", "use postgresql+asyncpg://jobbers@127.0.0.1:5432/jobbers"),
        ("sqlite:///x.db", "use sqlite+aiosqlite:///x.db"),
        ("sqlite+pysqlite:///x.db", "use sqlite+aiosqlite:///x.db"),
        ("jobbers.db", "use sqlite+aiosqlite:///jobbers.db or postgresql+asyncpg://"),
    ],
)
def test_a_sql_url_without_an_async_driver_says_which_form_to_use(sql_path: str, use: str, tmp_path: Path) -> None:
    result = run("jobbers_migrate", cwd=tmp_path, SQL_PATH=sql_path)

    line = one_line_error(result, "jobbers_migrate")
    assert result.returncode == 2
    assert f"SQL_PATH {sql_path!r}" in line and use in line
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("command", ["jobbers_worker", "jobbers_manager", "jobbers_scheduler"])
def test_every_process_that_uses_sql_checks_the_url_form(command: str, tmp_path: Path) -> None:
    result = run(command, *ARGS.get(command, []), cwd=tmp_path, SQL_PATH="postgresql://jobbers@db/jobbers")

    line = one_line_error(result, command)
    assert result.returncode == 2 and "use postgresql+asyncpg://jobbers@db/jobbers" in line


def test_a_malformed_redis_url_names_the_variable(tmp_path: Path) -> None:
    result = run("jobbers_cleaner", cwd=tmp_path, REDIS_URL="localhost:6379")

    line = one_line_error(result, "jobbers_cleaner")
    assert result.returncode == 2 and "REDIS_URL 'localhost:6379' is not a Redis URL" in line


def test_the_cleaner_with_redis_down_says_where_it_looked_without_the_password(tmp_path: Path) -> None:
    result = run("jobbers_cleaner", cwd=tmp_path, REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}")

    line = one_line_error(result, "jobbers_cleaner")
    assert result.returncode == 1 and "cannot reach Redis" in line
    assert "hunter2" not in line and ":***@127.0.0.1" in line


def test_a_busy_port_says_which_variable_moves_the_manager(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("jobbers_manager", "tests.e2e_tasks", cwd=tmp_path, MANAGER_HOST="127.0.0.1",
                     MANAGER_PORT=str(port), SQL_PATH=f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")

    line = one_line_error(result, "jobbers_manager")
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in line and "MANAGER_PORT" in line


def test_a_missing_task_module_is_one_line(tmp_path: Path) -> None:
    result = run("jobbers_worker", "no_such_module_xyz", cwd=tmp_path)

    assert result.returncode == 2 and "could not import task module" in one_line_error(result, "jobbers_worker")


def test_a_worker_whose_module_registers_no_tasks_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "empty_tasks.py").write_text("ANSWER = 42\n")
    result = run("jobbers_worker", "empty_tasks.py", cwd=tmp_path)

    line = one_line_error(result, "jobbers_worker")
    assert result.returncode == 2 and "'empty_tasks.py' registers no tasks" in line


# -- long-running processes that cannot reach Redis or SQL ---------------------------------


def start(command: str, *args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script(command), *args],
        cwd=cwd,
        env={**os.environ, "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def output_after(proc: subprocess.Popen[str], seconds: float) -> str:
    """Let ``proc`` run for ``seconds``, then SIGKILL it and return everything it printed."""
    try:
        return proc.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


@pytest.mark.parametrize("command", ["jobbers_worker", "jobbers_scheduler"])
def test_a_process_without_redis_logs_one_line_per_attempt(command: str, tmp_path: Path) -> None:
    proc = start(command, *ARGS.get(command, []), cwd=tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}",
                 SQL_PATH=f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    out = output_after(proc, 3)

    assert "Traceback" not in out
    attempts = [line for line in out.splitlines() if "Connection refused" in line]
    assert len(attempts) >= 2, out
    assert all(re.match(r"\d{4}-\d\d-\d\d [\d:,]+ WARNING ", line) for line in attempts), attempts


@pytest.mark.parametrize("command", ["jobbers_worker", "jobbers_scheduler", "jobbers_manager"])
def test_a_process_without_sql_exits_with_one_line(command: str, tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://jobbers@127.0.0.1:{free_port()}/jobbers"
    result = run(command, *ARGS.get(command, []), cwd=tmp_path, SQL_PATH=url, MANAGER_PORT=str(free_port()))

    assert result.returncode == 1
    assert "cannot use the SQL database at SQL_PATH" in one_line_error(result, command)


def test_a_manager_without_redis_says_so_once_and_answers_503(tmp_path: Path) -> None:
    port = free_port()
    proc = start("jobbers_manager", "tests.e2e_tasks", cwd=tmp_path, MANAGER_HOST="127.0.0.1",
                 MANAGER_PORT=str(port), REDIS_URL=f"redis://127.0.0.1:{free_port()}",
                 SQL_PATH=f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "manager did not come up"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]

    assert "Traceback" not in out
    warnings = [line for line in out.splitlines() if "is unreachable" in line]
    assert len(warnings) == 1 and "answer 503 until it is" in warnings[0], out


# -- logs -----------------------------------------------------------------------------------


async def test_every_line_of_the_manager_is_json_under_log_format_json(e2e: E2E) -> None:
    manager = e2e.platform.manager(LOG_FORMAT="json")
    for path in ("/healthz", "/no-such-page"):
        try:
            urllib.request.urlopen(manager.url + path, timeout=5)
        except urllib.error.HTTPError:
            pass
    e2e.platform.stop_all()

    lines = [line for line in e2e.platform.log_of(manager.proc).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    messages = [r["message"] for r in records]
    assert any("Uvicorn running on" in m for m in messages)
    assert any('"GET /healthz HTTP/1.1" 200' in m for m in messages)
    assert any('"GET /no-such-page HTTP/1.1" 404' in m for m in messages)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


async def test_a_worker_logs_the_task_types_it_serves_at_start(e2e: E2E) -> None:
    worker = e2e.platform.worker()
    deadline = time.monotonic() + 30
    while "started, role=" not in e2e.platform.log_of(worker):
        assert worker.poll() is None and time.monotonic() < deadline, e2e.platform.log_of(worker)
        time.sleep(0.05)

    line = next(x for x in e2e.platform.log_of(worker).splitlines() if "started, role=" in x)
    assert "queues=['default']" in line and "'noop v1'" in line and "'nap v1'" in line


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_variable_the_command_reads_with_its_default(command: str, tmp_path: Path) -> None:
    result = run(command, "--help", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    fields = settings_read_by(command)
    assert fields, command
    for field in fields:
        default = Settings.model_fields[field].default
        shown = f"{field.upper()} (unset)" if default is None else f"{field.upper()}={default}"
        if field in UNSET_MEANS.get(command, {}):
            shown = f"{field.upper()} (unset: {UNSET_MEANS[command][field]})"
        assert f"\n  {shown}\n" in result.stdout, (command, shown)


def test_every_setting_is_read_by_some_command() -> None:
    listed = {field for command in READS for field in settings_read_by(command)}
    assert listed == set(Settings.model_fields)


def test_help_rules_come_from_the_settings_model(tmp_path: Path) -> None:
    out = run("jobbers_worker", "--help", cwd=tmp_path).stdout
    assert "WORKER_CONCURRENT_TASKS=5\n      Tasks running at once in this process. Must be at least 1." in out
    assert "LOG_FORMAT=text" in out and "Must be one of: text, json." in " ".join(out.split())


@pytest.mark.parametrize(
    ("command", "sources"),
    [
        ("jobbers_worker", ["jobbers/worker/*.py"]),
        ("jobbers_scheduler", ["jobbers/scheduler.py"]),
        ("jobbers_cleaner", ["jobbers/cleaner.py"]),
        ("jobbers_manager", ["jobbers/manager/**/*.py"]),
        ("jobbers", ["jobbers/shell/*.py"]),
    ],
)
def test_help_lists_every_setting_the_code_of_the_command_reads(command: str, sources: list[str]) -> None:
    read = {
        name
        for pattern in sources
        for path in ROOT.glob(pattern)
        for name in re.findall(r"\bsettings\.([a-z_]+)\b", path.read_text())
        if name in Settings.model_fields
    }
    assert read <= set(settings_read_by(command)), read - set(settings_read_by(command))
