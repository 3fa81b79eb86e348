"""The ``.vscode/mcp.json`` entry that starts ``jobbers_mcp`` (``jobbers install-mcp``).

The entry runs this environment's interpreter (``python -m jobbers.mcp_server``), so the editor
starts the server with the packages installed here. By default only the read-only tools are
auto-approved; ``full_approve`` adds the tools that change state. The Jobbers settings set in
the environment that runs the command (``REDIS_URL``, ``SQL_PATH`` ...) are written into the
entry's ``env`` (a password in ``REDIS_URL`` lands in the file: keep it out of version control).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobbers.mcp_server import READ_ONLY_TOOLS, SERVER_NAME, WRITE_TOOLS

__all__ = [
    "DEFAULT_PATH",
    "PASSED_VARIABLES",
    "SERVER_NAME",
    "merged_config",
    "render",
    "server_entry",
    "write_config",
]

#: Where VS Code reads a workspace's MCP servers.
DEFAULT_PATH = Path(".vscode") / "mcp.json"
#: The settings copied into the entry when they are set.
PASSED_VARIABLES = ("REDIS_URL", "REDIS_CLUSTER", "REDIS_KEY_PREFIX", "SQL_PATH", "LOG_LEVEL")


def server_entry(
    full_approve: bool = False,
    task_module: str | None = None,
    with_worker: bool = False,
    environ: Mapping[str, str] | None = None,
    python: str | None = None,
) -> dict[str, Any]:
    """The ``servers.jobbers`` entry for this interpreter."""
    environ = os.environ if environ is None else environ
    args = ["-m", "jobbers.mcp_server"]
    if task_module:
        args.append(task_module)
    if with_worker:
        args.append("--with-worker")
    entry: dict[str, Any] = {"type": "stdio", "command": python or sys.executable, "args": args}
    env = {name: environ[name] for name in PASSED_VARIABLES if environ.get(name)}
    if env:
        entry["env"] = env
    approved: Sequence[str] = (*READ_ONLY_TOOLS, *WRITE_TOOLS) if full_approve else READ_ONLY_TOOLS
    entry["autoApprove"] = list(approved)
    return entry


def merged_config(existing: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` (an ``mcp.json``) with its ``jobbers`` server set to ``entry``, every other
    server and key kept."""
    config = dict(existing)
    servers = dict(config.get("servers") or {})
    servers[SERVER_NAME] = dict(entry)
    config["servers"] = servers
    return config


def write_config(path: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``entry`` into the ``mcp.json`` at ``path`` (created, with its folder, when missing);
    ``ValueError`` when the file there is not a JSON object."""
    existing: Any = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        existing = json.loads(text) if text.strip() else {}
        if not isinstance(existing, dict):
            raise ValueError(f"{path} does not hold a JSON object")
    config = merged_config(existing, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


def render(config: Mapping[str, Any]) -> str:
    """``config`` as the JSON text written or printed."""
    return json.dumps(config, indent=2)
