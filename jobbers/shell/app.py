"""The ``jobbers`` command line: options and arguments of each subcommand, and nothing else.

Every subcommand here parses what it was given and calls one function of ``listings``,
``actions`` or ``live`` through ``session.run_session`` (which owns connections and exit
statuses). ``jobbers manager|worker|scheduler|cleaner|migrate|openapi|dev`` hand their arguments,
``--help`` included, to the same code as the ``jobbers_*`` entry points.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from jobbers.env_help import environment_help
from jobbers.models.task import LISTED_STATUSES, TaskStatus
from jobbers.shell import actions, listings, live, rows
from jobbers.shell.output import Format, chosen_format
from jobbers.shell.session import Session, run_session
from jobbers.state.queries import TaskFilter

#: ``jobbers <name>`` -> the entry point of ``jobbers_<name>`` that it runs.
PROCESS_COMMANDS = {
    "manager": "jobbers.cli:manager_main",
    "worker": "jobbers.cli:worker_main",
    "scheduler": "jobbers.cli:scheduler_main",
    "cleaner": "jobbers.cli:cleaner_main",
    "migrate": "jobbers.cli:migrate_main",
    "openapi": "jobbers.cli:openapi_main",
    "dev": "jobbers.local:main",
    "mcp": "jobbers.mcp_server:main",
}


class _VerbatimEpilog:
    """Help whose epilog (the environment variables read) is printed as written, not re-wrapped."""

    epilog: str | None

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if self.epilog:
            formatter.write("\n" + self.epilog + "\n")


class ShellCommand(_VerbatimEpilog, TyperCommand):
    """A ``jobbers`` subcommand."""


class ShellGroup(_VerbatimEpilog, TyperGroup):
    """The ``jobbers`` command."""


app = typer.Typer(
    name="jobbers",
    cls=ShellGroup,
    help="Inspect and steer Jobbers from the shell: tasks, dead letters, queues, workers, live views. "
    "Talks to Redis and SQL directly (no manager needed). Exit status: 0 ok, 1 not found or "
    "refused, 2 usage, 3 Redis or SQL unavailable.",
    epilog=environment_help("jobbers"),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


Command = TypeVar("Command", bound=Callable[..., None])


def _command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand whose ``--help`` ends with the environment variables it reads."""
    register: Callable[[Command], Command] = app.command(
        name, cls=ShellCommand, epilog=environment_help(f"jobbers {name}")
    )
    return register


FormatOption = Annotated[
    Format | None,
    typer.Option("--format", "-f", help="table (default on a terminal), tsv (default when piped), jsonl"),
]
StatusOption = Annotated[
    list[TaskStatus] | None, typer.Option("--status", "-s", help="repeatable; default: every status")
]
QueueOption = Annotated[str | None, typer.Option("--queue", "-q", help="only tasks of this queue")]
NameOption = Annotated[str | None, typer.Option("--name", "-n", help="only tasks of this task name")]
SinceOption = Annotated[
    str | None,
    typer.Option(
        help="only tasks that entered their status (or the DLQ) since: 15m, 2h, 7d, an ISO time, or "
        "epoch seconds"
    ),
]
CorrelationOption = Annotated[
    str | None, typer.Option("--correlation-id", "-c", help="only tasks submitted with this correlation id")
]
LimitOption = Annotated[int, typer.Option(min=0, help="at most this many (0: all)")]
IdsArgument = Annotated[list[str], typer.Argument(help="task ids (a header word 'id' is skipped)")]
ResetOption = Annotated[bool, typer.Option("--reset-retries", help="start their retry count again at 0")]


def _finish(code: int) -> NoReturn:
    raise typer.Exit(code)


def _filters(
    queue: str | None, name: str | None, since: str | None, correlation_id: str | None = None
) -> TaskFilter:
    since_ms = None
    if since is not None:
        try:
            since_ms = int(rows.parse_since(since, dt.datetime.now(dt.UTC)).timestamp() * 1000)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    return TaskFilter(queue, name, since_ms, correlation_id=correlation_id)


def _ids(words: list[str]) -> list[str]:
    try:
        ids = rows.task_ids(words)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="IDS") from None
    if not ids:
        raise typer.BadParameter("no task ids given", param_hint="IDS")
    return ids


@_command("tasks")
def tasks(
    status: StatusOption = None,
    queue: QueueOption = None,
    name: NameOption = None,
    since: SinceOption = None,
    correlation_id: CorrelationOption = None,
    limit: LimitOption = 0,
    output: FormatOption = None,
) -> None:
    """Tasks, one a line: by status (in lifecycle order), each status oldest first."""
    statuses = list(dict.fromkeys(status)) if status else list(LISTED_STATUSES)
    filters = _filters(queue, name, since, correlation_id)
    fmt = chosen_format(output, sys.stdout)
    _finish(run_session(lambda s: listings.list_tasks(s, sys.stdout, fmt, statuses, filters, limit)))


@_command("export")
def export(
    status: StatusOption = None,
    queue: QueueOption = None,
    name: NameOption = None,
    since: SinceOption = None,
    correlation_id: CorrelationOption = None,
    limit: LimitOption = 0,
) -> None:
    """Every matching task record as JSON lines (as /task-status shows it), streamed page by page:
    `jobbers export --status completed > tasks.jsonl` archives before pruning."""
    statuses = list(dict.fromkeys(status)) if status else list(LISTED_STATUSES)
    filters = _filters(queue, name, since, correlation_id)
    _finish(run_session(lambda s: listings.list_tasks(s, sys.stdout, Format.JSONL, statuses, filters, limit)))


@_command("show")
def show(ids: IdsArgument, output: FormatOption = None) -> None:
    """Everything about tasks: status, times, params, result, error and every failed attempt."""
    task_ids = _ids(ids)
    fmt = chosen_format(output, sys.stdout)
    _finish(run_session(lambda s: listings.show_tasks(s, sys.stdout, fmt, task_ids)))


@_command("cancel")
def cancel(ids: IdsArgument, output: FormatOption = None) -> None:
    """Cancel tasks: queued or scheduled ones at once; a running one is stopped by its worker."""
    task_ids = _ids(ids)
    fmt = chosen_format(output, sys.stdout)
    _finish(run_session(lambda s: actions.cancel_tasks(s, sys.stdout, fmt, task_ids)))


@_command("resubmit")
def resubmit(ids: IdsArgument, reset_retries: ResetOption = False, output: FormatOption = None) -> None:
    """Put dead-lettered tasks back on their queues (only tasks in the dead letter queue)."""
    task_ids = _ids(ids)
    fmt = chosen_format(output, sys.stdout)
    _finish(
        run_session(lambda s: actions.resubmit_tasks(s, sys.stdout, fmt, task_ids, reset_retries), sql=True)
    )


@_command("dlq")
def dlq(
    queue: QueueOption = None,
    name: NameOption = None,
    since: SinceOption = None,
    limit: LimitOption = 0,
    resubmit: Annotated[bool, typer.Option("--resubmit", help="put the matching dead letters back")] = False,
    purge: Annotated[bool, typer.Option("--purge", help="remove the matching DLQ entries")] = False,
    every: Annotated[
        bool, typer.Option("--all", help="let --resubmit/--purge act without --queue or --name")
    ] = False,
    reset_retries: ResetOption = False,
    output: FormatOption = None,
) -> None:
    """The dead letter queue, oldest first; with --resubmit or --purge, act on what matches."""
    if resubmit and purge:
        raise typer.BadParameter("--resubmit and --purge exclude each other", param_hint="'--purge'")
    filters = _filters(queue, name, since)
    fmt = chosen_format(output, sys.stdout)
    if not (resubmit or purge):
        _finish(run_session(lambda s: listings.list_dead_letters(s, sys.stdout, fmt, filters, limit)))
    action = "--purge" if purge else "--resubmit"
    if queue is None and name is None and not every:
        raise typer.BadParameter(
            f"{action} without --queue or --name acts on every dead letter: name one, or pass --all",
            param_hint=f"'{action}'",
        )

    def body(s: Session) -> Any:
        return actions.act_on_dead_letters(
            s, sys.stdout, fmt, filters, limit, purge=purge, reset_retry_count=reset_retries
        )

    _finish(run_session(body, sql=resubmit))


@_command("queues")
def queues(output: FormatOption = None) -> None:
    """Every queue: paused or not, ready, blocked (waiting for a concurrency key's slot), scheduled,
    running, dead-lettered, latency (age of the oldest ready task, seconds), and tasks completed and
    failed in the last 5 minutes."""
    fmt = chosen_format(output, sys.stdout)
    _finish(run_session(lambda s: listings.list_queues(s, sys.stdout, fmt), sql=True))


@_command("workers")
def workers(output: FormatOption = None) -> None:
    """Live workers: role, queues, running tasks and slots, tasks processed, seconds since last seen."""
    fmt = chosen_format(output, sys.stdout)
    _finish(run_session(lambda s: listings.list_workers(s, sys.stdout, fmt)))


@_command("info")
def info(
    interval: Annotated[
        float, typer.Option(min=0, help="seconds between redraws (0: draw once, as when piped)")
    ] = 2.0,
) -> None:
    """A live dashboard of queues, task counts, throughput and workers, redrawn until Ctrl-C."""
    live_view = sys.stdout.isatty() and interval > 0
    _finish(
        run_session(lambda s: live.show_info(s, sys.stdout, interval, live_view), sql=True, interrupt_ok=True)
    )


@_command("tail")
def tail(
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="repeatable; default: every queue")
    ] = None,
    output: FormatOption = None,
) -> None:
    """Follow task transitions live (every status change, as it happens) until Ctrl-C."""
    fmt = chosen_format(output, sys.stdout)
    wanted = set(queue or ())
    _finish(run_session(lambda s: live.follow_transitions(s, sys.stdout, fmt, wanted), interrupt_ok=True))


@app.command("install-mcp", cls=ShellCommand)
def install_mcp(
    full_approve: Annotated[
        bool, typer.Option("--full-approve", help="also auto-approve enqueue_task, complete_task, fail_task")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write", help="write it into the file instead of printing it")
    ] = False,
    task_module: Annotated[
        str | None, typer.Option("--task-module", help="the server validates task names against it")
    ] = None,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="the server also runs a worker (needs --task-module)")
    ] = False,
    path: Annotated[Path, typer.Option("--path", help="the file --write updates")] = Path(".vscode/mcp.json"),
) -> None:
    """Print (or --write) the .vscode/mcp.json entry that starts jobbers_mcp with this interpreter;
    only the read-only tools are auto-approved unless --full-approve."""
    from jobbers import mcp_config

    if with_worker and not task_module:
        raise typer.BadParameter("--with-worker needs --task-module", param_hint="--with-worker")
    entry = mcp_config.server_entry(full_approve, task_module, with_worker)
    if not write:
        typer.echo(mcp_config.render(mcp_config.merged_config({}, entry)))
        _finish(0)
    try:
        mcp_config.write_config(path, entry)
    except (ValueError, OSError) as exc:
        typer.echo(f"jobbers install-mcp: {exc}", err=True)
        _finish(1)
    typer.echo(f"wrote the {mcp_config.SERVER_NAME!r} server to {path}")
    _finish(0)


def _process_command(name: str, target: str) -> None:
    @app.command(
        name,
        help=f"Run jobbers_{name} (the same arguments; `jobbers {name} --help` lists them).",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def run(ctx: typer.Context) -> None:
        module, function = target.split(":")
        entry = getattr(importlib.import_module(module), function)
        _finish(int(entry(list(ctx.args)) or 0))


for _name, _target in PROCESS_COMMANDS.items():
    _process_command(_name, _target)


def main(argv: list[str] | None = None) -> int:
    """The ``jobbers`` console script (and ``python -m jobbers``)."""
    try:
        app(args=argv, prog_name="jobbers")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
