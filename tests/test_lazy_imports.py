"""What a process imports at start: a worker is recycled every WORKER_TTL tasks (50 by default),
so each start pays for every module it loads. These check, in a fresh interpreter, that the
worker's entry path leaves out what only other commands use (benchmarks/recycle.py measures the
time; no test here is timed)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.processes import ROOT

#: Packages and rooms the worker never uses: the REST API and its server, the operator shell, the
#: MCP server, the other processes' rooms, SQL migrations (loaded only when a schema must change)
#: and the OTLP exporters (loaded at the first export).
NOT_FOR_THE_WORKER = (
    "fastapi", "starlette", "uvicorn", "typer", "mcp", "httpx", "alembic", "croniter",
    "grpc", "google.protobuf", "opentelemetry.exporter",
    "jobbers.manager", "jobbers.shell", "jobbers.mcp_server", "jobbers.client", "jobbers.scheduler",
    "jobbers.cleaner", "jobbers.state.upgrade", "jobbers.external_tasks",
)  # fmt: skip


def loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules among ``prefixes`` (packages included) loaded once ``code`` has run."""
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') "
        f"for p in {prefixes!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(out.stdout))


def test_the_worker_entry_path_does_not_load_what_only_other_commands_use() -> None:
    # The console script imports jobbers.cli; the worker command then imports its room.
    assert loaded_after("import jobbers.cli, jobbers.worker", NOT_FOR_THE_WORKER) == []


def test_importing_the_package_loads_only_what_is_used() -> None:
    heavy = ("redis", "sqlalchemy", "opentelemetry", "jobbers.client")
    assert loaded_after("import jobbers", ("pydantic", *heavy)) == []
    # A task module's `from jobbers import register_task` loads the registry, not the client.
    assert loaded_after("from jobbers import register_task", heavy) == []
    assert "jobbers.client" in loaded_after("from jobbers import JobbersClient", heavy)


def test_every_public_name_of_the_package_is_importable_and_submodules_still_are() -> None:
    import jobbers
    from jobbers.client import JobbersClient
    from jobbers.registry import register_task

    for name in jobbers.__all__:
        assert getattr(jobbers, name) is not None, name
    assert jobbers.JobbersClient is JobbersClient and jobbers.register_task is register_task
    assert set(jobbers.__all__) <= set(dir(jobbers))
    from jobbers import telemetry  # a submodule, not a name of the package's own

    assert telemetry.__name__ == "jobbers.telemetry"
    try:
        jobbers.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
