"""The ``jobbers`` command as an operator meets it: real Redis and SQLite, the installed console
script in a subprocess, and shell pipelines through grep, cut and xargs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pty
import select
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobbers.env_help import SUBCOMMAND_READS, settings_read_by
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.shell.app import PROCESS_COMMANDS, app
from jobbers.state.store import NewTask
from jobbers.state.walks import WALK_PAGE
from jobbers.task_json import item_json
from tests.e2e import E2E
from tests.processes import BIN, ROOT, free_port, script
from tests.redis_server import RedisServer

SUBCOMMANDS = sorted(name.split(" ", 1)[1] for name in SUBCOMMAND_READS)


def shell_env(e2e: E2E, **env: str) -> dict[str, str]:
    """The platform's environment, minus its LOG_LEVEL (the command's own default is tested)."""
    base = {k: v for k, v in e2e.platform.env.items() if k != "LOG_LEVEL"}
    return {**base, "PATH": f"{BIN}:{os.environ['PATH']}", **env}


def jobbers(e2e: E2E, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("jobbers"), *args], env=shell_env(e2e, **env), capture_output=True, text=True, timeout=timeout
    )


def sh(e2e: E2E, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``command`` in bash with ``pipefail`` (a failing ``jobbers`` anywhere fails the pipeline)."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=shell_env(e2e), capture_output=True, text=True,
        timeout=timeout,
    )


def tsv(stdout: str) -> list[dict[str, str]]:
    header, *lines = stdout.splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobbers: "), lines[0]
    return lines[0]


def burst(e2e: E2E, *args: str) -> None:
    """Run everything the queues hold with a burst worker (``jobbers worker --burst``)."""
    result = subprocess.run(
        [script("jobbers"), "worker", "--burst", *args, "tests.e2e_tasks"],
        env=e2e.platform.env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def submit(e2e: E2E, name: str, count: int = 1, queue: str = "default", **params: object) -> list[str]:
    tasks = [NewTask(name=name, queue=queue, params=dict(params)) for _ in range(count)]
    return [o.id for o in await e2e.store.submit_many(tasks)]


# -- listing ------------------------------------------------------------------------------------


async def test_tasks_are_one_a_line_with_the_id_first_and_a_header_when_piped(e2e: E2E) -> None:
    await e2e.config.save_queue(QueueConfig(name="reports"))
    noops = await submit(e2e, "noop", 3)
    reports = await submit(e2e, "nap", 2, queue="reports", seconds=0)

    everything = jobbers(e2e, "tasks")
    in_reports = jobbers(e2e, "tasks", "--queue", "reports")
    by_name = jobbers(e2e, "tasks", "--name", "noop", "--limit", "2")
    started = jobbers(e2e, "tasks", "--status", "started", "--status", "completed")

    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.splitlines()[0].startswith("id\tstatus\tqueue\tname\t")
    rows = tsv(everything.stdout)
    assert [r["id"] for r in rows] == noops + reports
    assert {r["status"] for r in rows} == {"submitted"} and rows[3]["queue"] == "reports"
    assert [r["id"] for r in tsv(in_reports.stdout)] == reports
    assert [r["id"] for r in tsv(by_name.stdout)] == noops[:2]
    assert started.returncode == 0 and tsv(started.stdout) == []
    assert everything.stderr == ""


async def test_tasks_and_export_filter_by_correlation_id(e2e: E2E) -> None:
    mine = [o.id for o in await e2e.store.submit_many(
        [NewTask(name="noop", correlation_id="agent-7") for _ in range(2)] + [NewTask(name="noop")]
    )][:2]  # fmt: skip

    listed = jobbers(e2e, "tasks", "--correlation-id", "agent-7")
    exported = jobbers(e2e, "export", "-c", "agent-7")

    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in tsv(listed.stdout)] == mine
    assert [json.loads(line)["correlation_id"] for line in exported.stdout.splitlines()] == ["agent-7"] * 2


async def test_since_seeks_by_the_time_a_task_entered_its_status(e2e: E2E) -> None:
    old = await submit(e2e, "noop", 2)
    await asyncio.sleep(0.05)
    boundary = dt.datetime.now(dt.UTC).isoformat()
    await asyncio.sleep(0.05)
    new = await submit(e2e, "noop", 2)

    recent = jobbers(e2e, "tasks", "--since", boundary)
    last_hour = jobbers(e2e, "tasks", "--since", "1h")
    future = jobbers(e2e, "tasks", "--since", str(time.time() + 3600))

    assert [r["id"] for r in tsv(recent.stdout)] == new
    assert [r["id"] for r in tsv(last_hour.stdout)] == old + new
    assert tsv(future.stdout) == []


async def test_jsonl_lines_are_the_records_as_the_api_shows_them_and_export_streams_them_all(
    e2e: E2E, tmp_path: Path
) -> None:
    ids = await submit(e2e, "noop", 7, note="tab\there")
    tasks = await e2e.store.get_tasks(ids)

    listed = jobbers(e2e, "tasks", "--format", "jsonl")
    exported = sh(e2e, f"jobbers export --status submitted > {tmp_path / 'tasks.jsonl'}")

    shown = [json.loads(item_json(t)) for t in tasks]
    assert [json.loads(line) for line in listed.stdout.splitlines()] == shown
    assert exported.returncode == 0, exported.stderr
    lines = (tmp_path / "tasks.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    assert json.loads(lines[0])["params"] == {"note": "tab\there"}


async def test_show_prints_the_whole_record_with_every_failed_attempt(e2e: E2E) -> None:
    (flaky,) = await submit(e2e, "flaky")
    (nap,) = await submit(e2e, "nap", seconds=0)
    burst(e2e)

    shown = jobbers(e2e, "show", flaky, "--format", "table")
    as_json = jobbers(e2e, "show", nap.lower(), "--format", "jsonl")
    as_tsv = jobbers(e2e, "show", nap)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    fields = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert fields["status"].split()[1] == "failed" and fields["dead_lettered"].split()[1] == "yes"
    assert "ConnectionError: upstream timed out" in fields["error"]
    record_text, events_text = shown.stdout.split("\nevents", 1)
    attempts = [line for line in record_text.splitlines() if "ConnectionError: upstream timed out" in line]
    assert len(attempts) == 1 + 3  # the error field, then attempts 0, 1 and 2
    kinds = [line.split()[1] for line in events_text.splitlines() if line.strip()]
    assert kinds[:2] == ["submitted", "started"] and kinds.count("retried") == 2 and kinds[-1] == "failed"
    record = json.loads(as_json.stdout)
    assert record["result"] == "rested" and record["params"] == {"seconds": 0}
    assert [e["type"] for e in record["events"]] == ["submitted", "started", "completed"]
    assert record["events"][1]["worker_id"] and record["events"][1]["attempt"] == 0
    pairs = {(r["field"], r["value"]) for r in tsv(as_tsv.stdout)}
    assert pairs >= {("status", "completed"), ("result", "rested")}
    (event_lines,) = [r["value"] for r in tsv(as_tsv.stdout) if r["field"] == "events"]
    assert [line.split()[1] for line in event_lines.split("\\n")] == ["submitted", "started", "completed"]


async def test_show_of_an_unknown_task_is_exit_1_and_a_malformed_id_exit_2(e2e: E2E) -> None:
    (known,) = await submit(e2e, "noop")
    unknown = NewTask(name="x").id

    missing = jobbers(e2e, "show", known, unknown)
    malformed = jobbers(e2e, "show", "not-an-id")

    assert missing.returncode == 1 and known in missing.stdout
    assert one_line(missing) == f"jobbers: no task {unknown}"
    assert malformed.returncode == 2 and "'not-an-id' is not a task id" in malformed.stderr
    assert "Traceback" not in malformed.stderr


# -- acting -------------------------------------------------------------------------------------


async def test_the_pipeline_from_the_issue_resubmits_the_tasks_that_timed_out(e2e: E2E) -> None:
    timed_out = await submit(e2e, "times_out", 3)
    failed = await submit(e2e, "fails", 2)
    burst(e2e)

    resubmitted = sh(e2e, "jobbers tasks --status failed | grep Timeout | cut -f1 | xargs jobbers resubmit")

    assert resubmitted.returncode == 0, resubmitted.stderr
    assert {r["id"]: r["outcome"] for r in tsv(resubmitted.stdout)} == {i: "resubmitted" for i in timed_out}
    statuses = {t.id: t.status for t in await e2e.store.get_tasks(timed_out + failed)}
    expected = {**dict.fromkeys(timed_out, TaskStatus.SUBMITTED), **dict.fromkeys(failed, TaskStatus.FAILED)}
    assert statuses == expected

    # cut -f1 passes the header's "id" along too: commands that take ids skip it.
    cancelled = sh(e2e, "jobbers tasks --status submitted | cut -f1 | xargs jobbers cancel")

    assert cancelled.returncode == 0, cancelled.stderr
    assert {r["id"]: r["outcome"] for r in tsv(cancelled.stdout)} == {i: "cancelled" for i in timed_out}


async def test_cancel_says_what_it_did_to_each_task_and_exits_1_when_one_refused(e2e: E2E) -> None:
    (done,) = await submit(e2e, "noop")
    burst(e2e)
    (queued,) = await submit(e2e, "noop")
    unknown = NewTask(name="x").id

    result = jobbers(e2e, "cancel", queued, done, unknown)

    assert result.returncode == 1, result.stderr
    assert tsv(result.stdout) == [
        {"id": queued, "outcome": "cancelled", "status": "cancelled"},
        {"id": done, "outcome": "conflict", "status": "completed"},
        {"id": unknown, "outcome": "not_found", "status": ""},
    ]
    assert (await e2e.store.get_task(queued)).status is TaskStatus.CANCELLED  # type: ignore[union-attr]


async def test_resubmit_refuses_a_task_not_in_the_dlq_or_whose_queue_is_gone(e2e: E2E) -> None:
    await e2e.config.save_queue(QueueConfig(name="gone"))
    (lost,) = await submit(e2e, "fails", queue="gone")
    (done,) = await submit(e2e, "noop")
    burst(e2e)
    await e2e.config.delete_queue("gone")

    result = jobbers(e2e, "resubmit", lost, done, "--format", "jsonl")

    assert result.returncode == 1
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"id": lost, "outcome": "queue_not_found", "status": "failed"},
        {"id": done, "outcome": "not_found", "status": "completed"},
    ]


async def test_dlq_lists_then_resubmits_or_purges_what_matches(e2e: E2E) -> None:
    timed_out = await submit(e2e, "times_out", 2)
    failed = await submit(e2e, "fails", 3)
    burst(e2e)

    listed = jobbers(e2e, "dlq")
    by_name = jobbers(e2e, "dlq", "--name", "fails", "--limit", "2")
    unfiltered = jobbers(e2e, "dlq", "--purge")
    both = jobbers(e2e, "dlq", "--purge", "--resubmit", "--all")
    purged = jobbers(e2e, "dlq", "--name", "fails", "--purge")
    resubmitted = jobbers(e2e, "dlq", "--resubmit", "--all", "--reset-retries")

    errors = {r["id"]: r["error"] for r in tsv(listed.stdout)}
    assert set(errors) == set(timed_out + failed)
    assert errors[timed_out[0]].startswith("TimeoutError") and errors[failed[0]] == "ValueError: bad input"
    assert len(tsv(by_name.stdout)) == 2 and {r["id"] for r in tsv(by_name.stdout)} < set(failed)
    assert unfiltered.returncode == 2 and "pass --all" in unfiltered.stderr
    assert both.returncode == 2 and "exclude each other" in both.stderr
    assert purged.returncode == 0 and {r["id"]: r["outcome"] for r in tsv(purged.stdout)} == dict.fromkeys(
        failed, "removed"
    )
    assert resubmitted.returncode == 0, resubmitted.stderr
    assert sorted(r["id"] for r in tsv(resubmitted.stdout)) == sorted(timed_out)
    assert {t.status for t in await e2e.store.get_tasks(timed_out)} == {TaskStatus.SUBMITTED}
    assert tsv(jobbers(e2e, "dlq").stdout) == []


async def test_dlq_resubmit_acts_only_on_what_was_dead_lettered_before_it_started(e2e: E2E) -> None:
    ids = await submit(e2e, "fails", 3 * WALK_PAGE)
    burst(e2e)
    # It fails them again at once, so they re-enter the DLQ while the command walks it page by page.
    worker = e2e.platform.worker(WORKER_CONCURRENT_TASKS="100")
    try:
        result = jobbers(e2e, "dlq", "--resubmit", "--all")
    finally:
        worker.terminate()
        worker.wait(30)

    assert result.returncode == 0, result.stderr
    resubmitted = [r["id"] for r in tsv(result.stdout)]
    assert sorted(resubmitted) == sorted(ids)  # each once


# -- queues, workers, live views -----------------------------------------------------------------


async def test_queues_show_what_waits_runs_and_ended_recently(e2e: E2E) -> None:
    await e2e.config.save_queue(QueueConfig(name="reports"))
    await submit(e2e, "noop", 2)
    burst(e2e)
    await submit(e2e, "fails", 1)
    burst(e2e)
    await submit(e2e, "noop", 3, queue="reports")
    await e2e.client.submit("noop", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    await e2e.client.pause_queue("reports")

    result = jobbers(e2e, "queues")

    assert result.returncode == 0, result.stderr
    by_queue = {r["queue"]: r for r in tsv(result.stdout)}
    assert set(by_queue) == {"default", "reports"}
    assert by_queue["default"] | {"latency_s": ""} == {
        "queue": "default", "paused": "", "ready": "0", "blocked": "0", "scheduled": "1", "running": "0",
        "dead_lettered": "1",
        "latency_s": "", "completed_5m": "2", "failed_5m": "1",
    }
    assert by_queue["reports"]["ready"] == "3" and float(by_queue["reports"]["latency_s"]) >= 0
    assert by_queue["reports"]["paused"] == "yes"


async def test_workers_lists_the_live_workers(e2e: E2E) -> None:
    worker = e2e.platform.worker(WORKER_ROLE="default", WORKER_CONCURRENT_TASKS="7")
    deadline = time.monotonic() + 30
    while True:
        rows = tsv(jobbers(e2e, "workers").stdout)
        if rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)

    assert len(rows) == 1, e2e.platform.log_of(worker)
    (row,) = rows
    assert row["role"] == "default" and row["queues"] == "default" and row["slots"] == "7"
    assert row["id"].split(":")[1] == str(worker.pid) and float(row["last_seen_s"]) < 5
    worker.terminate()
    worker.wait(30)
    assert tsv(jobbers(e2e, "workers").stdout) == []  # a worker that exits cleanly leaves the list


async def test_info_draws_once_when_piped(e2e: E2E) -> None:
    await submit(e2e, "noop", 4)

    result = jobbers(e2e, "info")

    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    assert result.stdout.startswith("jobbers info  redis://")
    assert "submitted 4" in result.stdout and "workers: 0 alive" in result.stdout
    queue_line = next(line for line in result.stdout.splitlines() if line.startswith("default"))
    assert queue_line.split()[1] == "4"


class Terminal:
    """``jobbers`` run on a pseudo-terminal, as an operator runs it; ``read_until`` collects its output."""

    def __init__(self, e2e: E2E, *args: str, **env: str) -> None:
        self.primary, secondary = pty.openpty()
        self.proc = subprocess.Popen(
            [script("jobbers"), *args], env=shell_env(e2e, COLUMNS="120", LINES="40", **env),
            stdin=secondary, stdout=secondary, stderr=secondary,
        )
        os.close(secondary)
        self.seen = b""

    def read_until(self, wanted: Callable[[bytes], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not wanted(self.seen):
            assert time.monotonic() < deadline and self.proc.poll() is None, self.seen[-2000:]
            ready, _, _ = select.select([self.primary], [], [], 0.2)
            if ready:
                self.seen += os.read(self.primary, 65536)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        os.close(self.primary)
        return code


FRAME = b"\x1b[H\x1b[2J"


async def test_info_redraws_in_place_on_a_terminal_until_ctrl_c(e2e: E2E) -> None:
    await submit(e2e, "noop", 2)
    terminal = Terminal(e2e, "info", "--interval", "0.2")
    try:
        terminal.read_until(lambda seen: seen.count(FRAME) >= 3)
    finally:
        code = terminal.interrupt()

    assert b"submitted 2" in terminal.seen and b"Traceback" not in terminal.seen
    assert code == 0


def test_a_live_dashboard_outlasts_a_redis_restart(e2e: E2E, fresh_redis_server: RedisServer) -> None:
    terminal = Terminal(e2e, "info", "--interval", "0.2", REDIS_URL=fresh_redis_server.url)
    try:
        terminal.read_until(lambda seen: b"workers: 0 alive" in seen)
        fresh_redis_server.kill()
        terminal.read_until(lambda seen: b"cannot read the platform" in seen)
        fresh_redis_server.start()
        terminal.seen = b""
        terminal.read_until(lambda seen: b"workers: 0 alive" in seen)
    finally:
        code = terminal.interrupt()

    assert code == 0 and b"Traceback" not in terminal.seen


async def test_tail_follows_every_transition_as_it_happens(e2e: E2E) -> None:
    await e2e.config.save_queue(QueueConfig(name="reports"))
    followers = [
        subprocess.Popen([script("jobbers"), "tail", *args], env=shell_env(e2e), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for args in ([], ["--queue", "reports"])
    ]
    try:
        for follower in followers:
            assert follower.stderr is not None
            assert "following task transitions" in follower.stderr.readline()
        (nap,) = await submit(e2e, "nap", seconds=0)
        (report,) = await submit(e2e, "noop", queue="reports")
        burst(e2e)
        await asyncio.sleep(0.5)
    finally:
        for follower in followers:
            follower.terminate()
    everything, reports_only = (f.communicate(timeout=30)[0] for f in followers)

    rows = tsv(everything)
    assert [(r["from"], r["to"]) for r in rows if r["id"] == nap] == [
        ("unsubmitted", "submitted"), ("submitted", "started"), ("started", "completed"),
    ]
    assert {r["name"] for r in rows if r["id"] == nap} == {"nap"}
    assert {r["id"] for r in tsv(reports_only)} == {report}
    assert all(r["queue"] == "reports" for r in tsv(reports_only))


# -- what stops a command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["tasks"], ["cancel", NewTask(name="x").id], ["tail"], ["queues"], ["info"]]
)
def test_redis_down_is_exit_3_with_one_line(e2e: E2E, args: list[str]) -> None:
    result = jobbers(e2e, *args, REDIS_URL=f"redis://:s3cret@127.0.0.1:{free_port()}")

    line = one_line(result)
    assert result.returncode == 3
    assert "cannot use Redis at REDIS_URL 'redis://:***@127.0.0.1:" in line and "s3cret" not in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args", [["queues"], ["resubmit", NewTask(name="x").id], ["dlq", "--resubmit", "--all"]]
)
def test_sql_down_is_exit_3_with_one_line(e2e: E2E, args: list[str]) -> None:
    url = f"postgresql+asyncpg://jobbers@127.0.0.1:{free_port()}/jobbers"
    result = jobbers(e2e, *args, SQL_PATH=url)

    assert result.returncode == 3
    assert "cannot use the SQL database at SQL_PATH" in one_line(result)


def test_a_sql_database_never_migrated_says_so(e2e: E2E, tmp_path: Path) -> None:
    result = jobbers(e2e, "queues", SQL_PATH=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")

    assert result.returncode == 3 and "run `jobbers migrate`" in one_line(result)


@pytest.mark.parametrize(
    "args",
    [["tasks", "--status", "lost"], ["tasks", "--since", "yesterday"], ["tasks", "--format", "xml"],
     ["tasks", "--limit", "-1"], ["cancel"], ["nosuchcommand"]],
)
def test_usage_errors_are_exit_2(e2e: E2E, args: list[str]) -> None:
    result = jobbers(e2e, *args)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


async def test_a_reader_that_stops_early_is_not_an_error(e2e: E2E) -> None:
    await submit(e2e, "noop", 3000)

    result = sh(e2e, "jobbers tasks | head -1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("id\t") and result.stderr == ""


# -- help and completion --------------------------------------------------------------------------


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_help_listing_the_variables_it_reads(subcommand: str) -> None:
    result = CliRunner().invoke(app, [subcommand, "--help"], prog_name="jobbers")

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: jobbers {subcommand} ")
    for field in settings_read_by(f"jobbers {subcommand}"):
        assert f"\n  {field.upper()}" in result.output, field


def test_process_commands_run_the_entry_points_of_the_jobbers_commands() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    assert {f"jobbers_{name}": target for name, target in PROCESS_COMMANDS.items()} == {
        name: target for name, target in scripts.items() if name.startswith("jobbers_")
    }


def test_a_process_command_hands_every_argument_on_help_included(e2e: E2E) -> None:
    through_jobbers = jobbers(e2e, "worker", "--help")
    direct = subprocess.run([script("jobbers_worker"), "--help"], env=shell_env(e2e), capture_output=True,
                            text=True, timeout=60)

    assert through_jobbers.returncode == direct.returncode == 0
    assert through_jobbers.stdout == direct.stdout and "--burst" in direct.stdout


def test_shell_completion_is_offered_and_completes_subcommands(e2e: E2E) -> None:
    shown = jobbers(e2e, "--show-completion", "bash")
    completed = jobbers(e2e, _JOBBERS_COMPLETE="complete_bash", COMP_WORDS="jobbers ta", COMP_CWORD="1")

    assert shown.returncode == 0 and "_JOBBERS_COMPLETE" in shown.stdout
    assert completed.stdout.split() == ["tasks", "tail"]
