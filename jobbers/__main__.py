"""``python -m jobbers <command> ...``: one front door beside the ``jobbers_*`` console scripts."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "manager": "jobbers.cli:manager_main",
    "worker": "jobbers.cli:worker_main",
    "scheduler": "jobbers.cli:scheduler_main",
    "cleaner": "jobbers.cli:cleaner_main",
    "migrate": "jobbers.cli:migrate_main",
    "openapi": "jobbers.cli:openapi_main",
    "dev": "jobbers.local:main",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m jobbers {{{','.join(COMMANDS)}}} [args...]", file=sys.stderr)
        return 2
    module, func = COMMANDS[args[0]].split(":")
    entry = getattr(importlib.import_module(module), func)
    return int(entry(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
