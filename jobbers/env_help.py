"""The environment variables each command reads, for its ``--help``, generated from ``Settings``.

Names, defaults, rules (``ge=1`` ...) and descriptions all come from the settings model, so the
help cannot drift from what the code reads. ``READS`` is the one place that says which command
reads which settings; a prefix such as ``worker_`` takes every field that starts with it, so a
new ``WORKER_*`` setting shows up in ``jobbers_worker --help`` without touching this file.
"""

from __future__ import annotations

import textwrap
import typing
from enum import Enum

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from jobbers.settings import Settings

#: Read by every process that talks to Redis (each caps the audit log it writes to).
_REDIS = ("redis_url", "redis_cluster", "redis_key_prefix", "audit_max_events")
_LOGS = ("log_level", "log_format")

#: Command -> the settings it reads (field names, or prefixes ending in ``_``).
READS: dict[str, tuple[str, ...]] = {
    "jobbers_manager": (*_REDIS, "sql_path", "manager_", *_LOGS),
    "jobbers_worker": (*_REDIS, "sql_path", "worker_", *_LOGS),
    "jobbers_scheduler": (*_REDIS, "sql_path", "scheduler_", *_LOGS),
    "jobbers_cleaner": (*_REDIS, "audit_max_age_seconds", *_LOGS),
    "jobbers_migrate": ("sql_path", *_REDIS, *_LOGS),
    # It builds the manager's app from the same settings, so the document is what it would serve.
    "jobbers_openapi": ("manager_",),
    # An MCP server for agents; with --with-worker it also runs a worker.
    "jobbers_mcp": (*_REDIS, "sql_path", "worker_", *_LOGS),
    "jobbers_dev": ("redis_url", "redis_cluster", "sql_path", "manager_host", "manager_port"),
    # The operator's front door: every subcommand's reads (SUBCOMMAND_READS) together.
    "jobbers": (*_REDIS, "sql_path", *_LOGS),
}
#: ``jobbers`` subcommand -> the settings it reads (its own ``--help`` lists them). The commands
#: that run a process (``jobbers worker`` ...) read what their ``jobbers_*`` entry point reads.
_REDIS_ONLY = ("tasks", "show", "cancel", "workers", "tail", "export")
_WITH_SQL = ("resubmit", "dlq", "queues", "info")
SUBCOMMAND_READS: dict[str, tuple[str, ...]] = {
    **{f"jobbers {name}": (*_REDIS, *_LOGS) for name in _REDIS_ONLY},
    **{f"jobbers {name}": (*_REDIS, "sql_path", *_LOGS) for name in _WITH_SQL},
}
#: Where a command's behaviour when a variable is unset differs from the settings default.
UNSET_MEANS: dict[str, dict[str, str]] = {
    "jobbers_dev": {
        "redis_url": "starts its own Redis in a temporary folder",
        "sql_path": "a SQLite file in that folder when it started Redis, else "
        + str(Settings.model_fields["sql_path"].default),
        "manager_host": "127.0.0.1, so the platform is reachable only from this machine",
    },
    # An operator's shell logs only what needs attention, unless asked.
    **{
        command: {"log_level": "WARNING, warnings and errors only"}
        for command in ("jobbers", *SUBCOMMAND_READS)
    },
}
#: Commands that export OpenTelemetry (configured by the standard ``OTEL_*`` variables).
TELEMETRY = {"jobbers_manager", "jobbers_worker", "jobbers_scheduler", "jobbers_cleaner"}
_WIDTH = 100


def settings_read_by(command: str) -> list[str]:
    """The ``Settings`` field names ``command`` reads, in the model's order."""
    wanted = READS[command] if command in READS else SUBCOMMAND_READS[command]
    return [
        name
        for name in Settings.model_fields
        if any(name == w or (w.endswith("_") and name.startswith(w)) for w in wanted)
    ]


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return field.upper()


def default_text(info: FieldInfo) -> str:
    """A field's default as a user would type it (``unset`` when there is none)."""
    default = info.default
    if default is None or default is PydanticUndefined:
        return "unset"
    if isinstance(default, Enum):
        return str(default.value)
    return str(default)


def rule_text(info: FieldInfo) -> str:
    """The constraint a value must meet (``at least 1``, ``one of: text, json``), or ``""``."""
    rules = []
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            rules.append(f"at least {meta.ge}")
        elif isinstance(meta, annotated_types.Gt):
            rules.append(f"greater than {meta.gt}")
        elif isinstance(meta, annotated_types.Le):
            rules.append(f"at most {meta.le}")
        elif isinstance(meta, annotated_types.Lt):
            rules.append(f"less than {meta.lt}")
    if typing.get_origin(info.annotation) is typing.Literal:
        rules.append("one of: " + ", ".join(str(v) for v in typing.get_args(info.annotation)))
    return " and ".join(rules)


def variable_heading(command: str, field: str) -> str:
    """``NAME=default``, ``NAME (unset)``, or ``NAME (unset: what the command does then)``."""
    unset_means = UNSET_MEANS.get(command, {}).get(field)
    if unset_means is not None:
        return f"{env_name(field)} (unset: {unset_means})"
    default = default_text(Settings.model_fields[field])
    return f"{env_name(field)} (unset)" if default == "unset" else f"{env_name(field)}={default}"


def describe_variable(command: str, field: str) -> list[str]:
    """The variable's heading and its wrapped description (with its rule), as help lines."""
    info = Settings.model_fields[field]
    head = f"  {variable_heading(command, field)}"
    text = " ".join((info.description or "").split())
    rule = rule_text(info)
    if rule:
        text = f"{text} Must be {rule}."
    return [head, *textwrap.wrap(text, _WIDTH, initial_indent="      ", subsequent_indent="      ")]


def environment_help(command: str, note: str = "") -> str:
    """The ``--help`` epilog of ``command``: every variable it reads, with its default."""
    lines = ["environment variables (shown with their defaults):"]
    fields = settings_read_by(command)
    for field in fields:
        lines += describe_variable(command, field)
    if command in TELEMETRY:
        lines += [
            "  OTEL_*",
            "      Standard OpenTelemetry variables: OTLP endpoints, protocol, export interval;",
            "      OTEL_SDK_DISABLED=true turns export off.",
        ]
    if not fields and command not in TELEMETRY:
        lines.append("  none")
    if note:
        lines += ["", *textwrap.wrap(" ".join(note.split()), _WIDTH)]
    return "\n".join(lines)
