"""Task module of the MCP server tests: an external type the agent completes itself, and a task
function an embedded worker (``--with-worker``) runs."""

from __future__ import annotations

from jobbers import register_external_task, register_task

register_external_task("add_docstring", params=["path"], max_retries=1, retry_delay=0)


@register_task("count_lines")
async def count_lines(text: str) -> int:
    return len(text.splitlines())
