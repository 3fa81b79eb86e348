"""The MCP server end to end: the SDK's own client over stdio against real ``jobbers_mcp``
subprocesses on a real Redis and SQLite."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from jobbers.mcp_server import READ_ONLY_TOOLS, WRITE_TOOLS
from tests.e2e import E2E

ROOT = Path(__file__).resolve().parent.parent
SESSION = "/home/dev/project"  # a correlation id as an editor agent would use: its workspace


def server_pids() -> set[int]:
    """Pids of the jobbers MCP servers this test process started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
            if parent == str(os.getpid()) and b"jobbers.mcp_server" in cmdline:
                found.add(int(entry.name))
    return found


def server_log(path: Path) -> Any:
    """Where a server's stderr goes (its log lines; stdout carries the protocol)."""
    return path.open("a")


@asynccontextmanager
async def mcp_session(e2e: E2E, *args: str, errlog: Any = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "jobbers.mcp_server", *args],
        env={k: v for k, v in e2e.platform.env.items() if k != "LOG_LEVEL"},
        cwd=str(ROOT),
    )
    log = errlog or server_log(e2e.platform.tmp / "mcp.log")
    async with stdio_client(params, errlog=log) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result
    structured = result.structured_content
    if structured is None:
        structured = json.loads(result.content[0].text)
    return structured.get("result", structured) if set(structured) == {"result"} else structured


async def test_tools_have_schemas_and_read_only_hints(e2e: E2E) -> None:
    async with mcp_session(e2e, "tests.mcp_tasks") as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) >= {*WRITE_TOOLS, *READ_ONLY_TOOLS}
        for name, tool in tools.items():
            assert tool.input_schema["type"] == "object", name
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (name in READ_ONLY_TOOLS), name
        assert tools["enqueue_task"].input_schema["required"] == ["name"]
        unknown = await session.call_tool("enqueue_task", {"name": "nope"})
        assert unknown.is_error and "no task 'nope'" in unknown.content[0].text
        bad = await session.call_tool("enqueue_task", {"name": "add_docstring", "params": {"x": 1}})
        assert bad.is_error and "params do not fit" in bad.content[0].text
        misspelt = {"name": "add_docstring", "params": {"path": "a.py"}, "correlaton_id": "s"}
        refused = await session.call_tool("enqueue_task", misspelt)  # never a task outside its session
        assert refused.is_error and "correlaton_id" in refused.content[0].text
        assert all(t.input_schema["additionalProperties"] is False for t in tools.values())
        assert (await call(session, "health"))["statuses"].get("submitted", 0) == 0


async def test_a_new_server_resumes_the_session_where_the_killed_one_stopped(e2e: E2E) -> None:
    async with mcp_session(e2e, "tests.mcp_tasks") as session:
        ids = []
        for i in range(12):
            sub = await call(
                session,
                "enqueue_task",
                name="add_docstring",
                params={"path": f"f{i}.py"},
                correlation_id=SESSION,
            )
            assert sub["status"] == "submitted"
            ids.append(sub["id"])
        for task_id in ids[:7]:
            done = await call(session, "complete_task", task_id=task_id, result={"edited": True})
            assert done["status"] == "completed"
        (pid,) = server_pids()
        os.kill(pid, signal.SIGKILL)  # the IDE crashed
    assert server_pids() == set()

    async with mcp_session(e2e, "tests.mcp_tasks") as session:
        resumed = await call(session, "resume_session", correlation_id=SESSION)
        assert resumed["count"] == 5
        assert [t["id"] for t in resumed["tasks"]] == ids[7:]  # oldest first
        assert resumed["tasks"][0]["params"] == {"path": "f7.py"}
        checked = await call(session, "check_task", task_id=ids[0])
        assert checked["status"] == "completed" and checked["attempts"] == 1
        assert checked["task"]["result"] == {"edited": True}
        failed = await call(session, "fail_task", task_id=ids[7], error="file vanished", retryable=True)
        assert failed["status"] == "submitted" and failed["retry_attempt"] == 1  # max_retries=1
        listed = await call(session, "list_tasks", correlation_id=SESSION, status=["completed"])
        assert sorted(t["id"] for t in listed["tasks"]) == sorted(ids[:7])
        health = await call(session, "health")
        assert health["statuses"]["completed"] == 7 and health["statuses"]["submitted"] == 5
        assert {q["queue"]: q["external"] for q in health["queues"]}["default"] == 5


async def test_the_audit_log_and_check_task_say_what_happened(e2e: E2E) -> None:
    async with mcp_session(e2e, "tests.mcp_tasks") as session:
        done = await call(session, "enqueue_task", name="add_docstring", params={"path": "a.py"}, correlation_id=SESSION)
        other = await call(session, "enqueue_task", name="add_docstring", params={"path": "b.py"}, correlation_id=SESSION)
        await call(session, "complete_task", task_id=done["id"], result="ok")
        await call(session, "fail_task", task_id=other["id"], error="no such file", retryable=False)
        log = await call(session, "audit_log", correlation_id=SESSION)
        assert [(e["task_id"], e["type"]) for e in log["events"]] == [
            (done["id"], "submitted"),
            (other["id"], "submitted"),
            (done["id"], "started"),
            (done["id"], "completed"),
            (other["id"], "started"),
            (other["id"], "failed"),
        ]
        assert log["next_cursor"] is None and log["events"][-1]["detail"].endswith("no such file")
        failed = await call(session, "audit_log", correlation_id=SESSION, type=["failed"])
        assert [e["task_id"] for e in failed["events"]] == [other["id"]]
        counts = await call(session, "audit_log", summary=True)
        assert counts["total"] == 6 and counts["by_type"]["submitted"] == 2
        assert counts["by_task_name"] == {"add_docstring": {"submitted": 2, "started": 2, "completed": 1, "failed": 1}}
        checked = await call(session, "check_task", task_id=done["id"])
        assert [e["type"] for e in checked["last_events"]] == ["submitted", "started", "completed"]
        assert checked["progress"] is None
        bad = await session.call_tool("audit_log", {"type": ["exploded"]})
        assert bad.is_error
        misspelt = await session.call_tool("audit_log", {"corelation_id": SESSION})
        assert misspelt.is_error and "corelation_id" in misspelt.content[0].text


async def test_with_worker_runs_task_functions_in_the_server(e2e: E2E) -> None:
    async with mcp_session(e2e, "tests.mcp_tasks", "--with-worker") as session:
        sub = await call(session, "enqueue_task", name="count_lines", params={"text": "a\nb\nc"})
        (task,) = await e2e.wait_terminal([sub["id"]], 30)
        assert task.status == "completed" and task.result == 3
        checked = await call(session, "check_task", task_id=sub["id"])
        assert checked["status"] == "completed" and checked["duration_seconds"] is not None


def test_install_mcp_prints_the_entry_for_this_interpreter_with_read_only_tools_approved(
    capsys: Any, monkeypatch: Any
) -> None:
    from jobbers.shell import main

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/0")
    monkeypatch.delenv("SQL_PATH", raising=False)
    assert main(["install-mcp"]) == 0
    entry = json.loads(capsys.readouterr().out)["servers"]["jobbers"]
    assert entry["type"] == "stdio" and entry["command"] == sys.executable
    assert entry["args"] == ["-m", "jobbers.mcp_server"]
    assert entry["env"] == {"REDIS_URL": "redis://127.0.0.1:6390/0"}
    assert entry["autoApprove"] == list(READ_ONLY_TOOLS)
    assert main(["install-mcp", "--full-approve", "--task-module", "myapp.tasks", "--with-worker"]) == 0
    full = json.loads(capsys.readouterr().out)["servers"]["jobbers"]
    assert set(full["autoApprove"]) == {*READ_ONLY_TOOLS, *WRITE_TOOLS}
    assert full["args"] == ["-m", "jobbers.mcp_server", "myapp.tasks", "--with-worker"]


def test_install_mcp_write_keeps_the_other_servers_of_the_file(tmp_path: Path, capsys: Any) -> None:
    from jobbers.shell import main

    path = tmp_path / ".vscode" / "mcp.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"servers": {"other": {"type": "stdio", "command": "x"}}, "inputs": []}))
    assert main(["install-mcp", "--write", "--path", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    written = json.loads(path.read_text())
    assert set(written["servers"]) == {"other", "jobbers"} and written["inputs"] == []
    path.write_text("[1]")
    assert main(["install-mcp", "--write", "--path", str(path)]) == 1


async def test_http_serves_the_same_tools_over_streamable_http(e2e: E2E) -> None:
    import asyncio

    from mcp.client.streamable_http import streamable_http_client

    from tests.redis_server import free_port

    port = free_port()
    server = e2e.platform.start("jobbers_mcp", "tests.mcp_tasks", "--http", "--port", str(port))
    for _ in range(300):  # until it listens
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            assert server.poll() is None, e2e.platform.log_of(server)
            await asyncio.sleep(0.1)
    url = f"http://127.0.0.1:{port}/mcp"
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {*WRITE_TOOLS, "resume_session", "health"} <= tools
        sub = await call(session, "enqueue_task", name="add_docstring", params={"path": "x.py"})
        done = await call(session, "complete_task", task_id=sub["id"], result="ok")
        assert done["status"] == "completed"
