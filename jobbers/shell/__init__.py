"""``jobbers``: the operator's front door, beside the ``jobbers_*`` entry points.

A thin door over the same state and config functions the manager uses: it talks to Redis and
SQL directly (``REDIS_URL``, ``REDIS_KEY_PREFIX``, ``SQL_PATH``), so it works with no manager
running. Modules: ``app`` (the subcommands' options), ``session`` (connections, exit statuses),
``listings`` / ``actions`` / ``live`` (what the subcommands do), ``rows`` (their columns) and
``output`` (table, TSV, JSON lines).
"""

from jobbers.shell.app import app, main

__all__ = ["app", "main"]
