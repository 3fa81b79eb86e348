"""Telemetry end to end: real worker, scheduler, cleaner and producer processes export OTLP/HTTP to a
small receiver started here, and we check exactly what arrives (names, types, labels, values),
that the worker's ``task.execute`` spans are children of the producer's ``task.submit`` spans, and
that logs inside a task carry its identity. Without a collector, processes stay quiet and exit fast.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.e2e import E2E, wait_until
from tests.processes import ROOT
from tests.redis_server import free_port

# -- the receiver ---------------------------------------------------------------------------------

ROUTES: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf posts and keeps the decoded requests, by path."""

    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = {path: [] for path in ROUTES}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path not in ROUTES:
                    self.send_response(404)
                    self.end_headers()
                    return
                request_type, response_type = ROUTES[self.path]
                with receiver.lock:
                    receiver.received[self.path].append(request_type.FromString(body))
                reply = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.received[path])


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        **extra,
    }


# -- decoding -------------------------------------------------------------------------------------


def _value(kv: KeyValue) -> Any:
    return getattr(kv.value, kv.value.WhichOneof("value"))


def attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv) for kv in items}


@dataclass(frozen=True)
class Point:
    service: str
    metric: str
    kind: str  # counter, up_down_counter, gauge, histogram
    unit: str
    labels: tuple[tuple[str, Any], ...]
    value: float  # the sum's or gauge's value; a histogram's count
    total: float  # a histogram's sum
    time: int


LabelSet = tuple[tuple[str, Any], ...]


def latest_points(receiver: OtlpReceiver) -> dict[tuple[str, str, LabelSet], Point]:
    """The newest point of every (service, metric, label set): with cumulative temporality, the totals."""
    latest: dict[tuple[str, str, LabelSet], Point] = {}
    for request in receiver.requests("/v1/metrics"):
        for rm in request.resource_metrics:
            service = attrs(rm.resource.attributes)["service.name"]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    if kind == "sum":
                        assert data.aggregation_temporality == 2  # cumulative
                        kind = "counter" if data.is_monotonic else "up_down_counter"
                    for dp in data.data_points:
                        labels = tuple(sorted(attrs(dp.attributes).items()))
                        if kind == "histogram":
                            assert list(dp.bucket_counts) and sum(dp.bucket_counts) == dp.count
                            value, total = float(dp.count), dp.sum
                        else:
                            value, total = float(getattr(dp, dp.WhichOneof("value"))), 0.0
                        point = Point(service, m.name, kind, m.unit, labels, value, total, dp.time_unix_nano)
                        key = (service, m.name, labels)
                        if key not in latest or latest[key].time <= point.time:
                            latest[key] = point
    return latest


def summary(receiver: OtlpReceiver, service: str) -> dict[tuple[str, str, LabelSet], float]:
    """{(metric, kind, labels): value} for one service."""
    points = latest_points(receiver).values()
    return {(p.metric, p.kind, p.labels): p.value for p in points if p.service == service}


def spans(receiver: OtlpReceiver) -> list[tuple[str, Any]]:
    """(service, span) for every span received."""
    out = []
    for request in receiver.requests("/v1/traces"):
        for rs in request.resource_spans:
            service = attrs(rs.resource.attributes)["service.name"]
            for ss in rs.scope_spans:
                out += [(service, span) for span in ss.spans]
    return out


def L(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# -- tests ----------------------------------------------------------------------------------------


async def test_worker_scheduler_and_producer_export_the_documented_metrics_and_a_connected_trace(
    e2e: E2E, receiver: OtlpReceiver
) -> None:
    e2e.platform.env.update(otel_env(receiver))
    e2e.platform.worker()
    e2e.platform.scheduler()
    produced = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tests.trace_producer"], env=e2e.platform.env, cwd=ROOT,
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    made = json.loads(produced.stdout)
    noops, flaky = made["noop"], made["flaky"]
    await e2e.wait_terminal([*noops, flaky])

    default = {"queue": "default", "role": "default"}
    worker_expected = {
        ("tasks_selected", "counter", L(**default, task="noop")): 3,
        ("tasks_selected", "counter", L(**default, task="flaky")): 3,
        ("time_in_queue", "histogram", L(**default, task="noop")): 3,
        ("time_in_queue", "histogram", L(**default, task="flaky")): 3,
        ("tasks_in_flight", "up_down_counter", L(**default)): 0,
        ("tasks_processed", "counter", L(queue="default", task="noop", status="completed")): 3,
        ("tasks_processed", "counter", L(queue="default", task="flaky", status="failed")): 1,
        ("task_execution_time", "histogram", L(queue="default", task="noop", status="completed")): 3,
        ("task_execution_time", "histogram", L(queue="default", task="flaky", status="failed")): 1,
        ("task_end_to_end_latency", "histogram", L(queue="default", task="noop", status="completed")): 3,
        ("task_end_to_end_latency", "histogram", L(queue="default", task="flaky", status="failed")): 1,
        ("tasks_retried", "counter", L(queue="default", task="flaky", version="1")): 2,
        ("tasks_dead_lettered", "counter", L(queue="default", task="flaky", version="1")): 1,
    }
    scheduler_expected = {
        ("tasks_promoted", "counter", L(queue="default")): 2,
        ("scheduler_lag", "histogram", L(queue="default")): 2,
        ("queue_depth", "gauge", L(queue="default")): 0,
        ("queue_oldest_task_age", "gauge", L(queue="default")): 0,
    }
    producer_expected = {("cancellations_requested", "counter", L(queue="default", task="nap")): 1}
    # Exports come every 200 ms; wait until the last ones carry the final totals.
    await wait_until(lambda: summary(receiver, "jobbers-worker") == worker_expected, 10)
    await wait_until(lambda: summary(receiver, "jobbers-scheduler") == scheduler_expected, 10)
    assert summary(receiver, "test-producer") == producer_expected  # flushed at its exit

    points = list(latest_points(receiver).values())
    assert {p.metric for p in points if p.unit == "ms"} == {
        "time_in_queue", "task_execution_time", "task_end_to_end_latency",
        "scheduler_lag", "queue_oldest_task_age",
    }  # fmt: skip
    e2e_ms = sum(p.total for p in points if p.metric == "task_end_to_end_latency")
    exec_ms = sum(p.total for p in points if p.metric == "task_execution_time")
    assert 0 <= exec_ms <= e2e_ms < 60_000

    # Traces: every execution is a child of the span that submitted its task, across processes.
    received = spans(receiver)
    submits = {
        attrs(s.attributes)["jobbers.task.id"]: s for svc, s in received if s.name == "task.submit"
    }
    assert all(svc == "test-producer" for svc, s in received if s.name == "task.submit")
    assert set(submits) == {*noops, flaky, made["cancelled"]}
    executions = [(svc, s) for svc, s in received if s.name == "task.execute"]
    assert {svc for svc, _ in executions} == {"jobbers-worker"} and len(executions) == 6
    attempts: dict[str, list[int]] = {}
    for _, span in executions:
        a = attrs(span.attributes)
        parent = submits[a["jobbers.task.id"]]
        assert (span.trace_id, span.parent_span_id) == (parent.trace_id, parent.span_id)
        assert a["jobbers.task.queue"] == "default" and a["jobbers.worker.id"]
        assert a["jobbers.task.name"] == ("flaky" if a["jobbers.task.id"] == flaky else "noop")
        assert span.status.code == (2 if a["jobbers.task.name"] == "flaky" else 0)  # ERROR / UNSET
        # The correlation id is an attribute of the executions of the task that has one.
        assert a.get("jobbers.task.correlation_id") == ("session-flaky" if a["jobbers.task.name"] == "flaky" else None)
        attempts.setdefault(a["jobbers.task.id"], []).append(a["jobbers.task.attempt"])
    assert sorted(attempts[flaky]) == [0, 1, 2] and all(attempts[n] == [0] for n in noops)


async def test_cleaner_flushes_its_stall_counts_before_it_exits(e2e: E2E, receiver: OtlpReceiver) -> None:
    e2e.platform.worker()  # no telemetry for the worker: only the cleaner's export is under test
    hung = await e2e.client.submit("hangs")
    await e2e.wait_started([hung.id])
    await asyncio.sleep(0.5)  # past the task's max_heartbeat_interval of 0.3 s
    e2e.platform.env.update(otel_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="60000"))
    started = time.monotonic()
    out = e2e.platform.run("jobbers_cleaner")
    assert json.loads(out.stdout)["stalled"] == 1 and time.monotonic() - started < 15
    assert summary(receiver, "jobbers-cleaner") == {
        ("stalls_recovered", "counter", L(queue="default", outcome="hung")): 1
    }


async def test_logs_inside_a_task_carry_its_identity_as_json_and_over_otlp(
    e2e: E2E, receiver: OtlpReceiver
) -> None:
    worker = e2e.platform.worker(
        **otel_env(receiver, OTEL_LOGS_EXPORTER="otlp", LOG_FORMAT="json", OTEL_METRICS_EXPORTER="none")
    )
    done = await e2e.client.submit("chatty", correlation_id="agent-session-1")
    await e2e.wait_terminal([done.id])
    identity = {
        "task_id": done.id, "task_name": "chatty", "queue": "default", "attempt": 0,
        "correlation_id": "agent-session-1",
    }  # fmt: skip

    def json_line() -> dict[str, Any] | None:
        for line in e2e.platform.log_of(worker).splitlines():
            record = json.loads(line)  # every line is JSON
            if record["message"] == "halfway through":
                return record
        return None

    await wait_until(lambda: json_line() is not None, 5)
    record = json_line()
    assert record is not None
    assert {k: record[k] for k in identity} == identity and record["worker_id"]
    assert record["level"] == "WARNING" and record["logger"] == "e2e.chatty"

    def otlp_record() -> dict[str, Any] | None:
        for request in receiver.requests("/v1/logs"):
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        if lr.body.string_value == "halfway through":
                            return attrs(lr.attributes)
        return None

    await wait_until(lambda: otlp_record() is not None, 5)
    exported = otlp_record()
    assert exported is not None and {k: exported[k] for k in identity} == identity
    assert receiver.requests("/v1/metrics") == []  # OTEL_METRICS_EXPORTER=none


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_without_a_collector_processes_run_quietly_and_exit_promptly(e2e: E2E, protocol: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    env = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "OTEL_EXPORTER_OTLP_ENDPOINT": nobody, "OTEL_METRIC_EXPORT_INTERVAL": "100"}
    worker = e2e.platform.worker(**env)
    scheduler = e2e.platform.scheduler(**env)
    done = await e2e.client.submit("noop")
    assert (await e2e.client.wait(done.id, 10)).status.value == "completed"
    await asyncio.sleep(1.5)  # several failed exports, each retried in the background
    for proc in (worker, scheduler):
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert time.monotonic() - started < 3
        log = e2e.platform.log_of(proc)
        assert "opentelemetry" not in log and "Traceback" not in log and "WARNING" not in log, log


async def test_a_worker_recycled_by_worker_ttl_exports_its_counts_at_exit(
    e2e: E2E, receiver: OtlpReceiver
) -> None:
    # It lives well under the export interval: only the export at its exit can carry its counts.
    ids = [(await e2e.client.submit("noop")).id for _ in range(3)]
    worker = e2e.platform.worker(**otel_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="60000", WORKER_TTL="3"))
    assert await asyncio.to_thread(worker.wait, 30) == 0
    await e2e.wait_terminal(ids)
    processed = ("tasks_processed", "counter", L(queue="default", task="noop", status="completed"))
    assert summary(receiver, "jobbers-worker").get(processed) == 3


def test_without_a_collector_a_process_never_loads_the_otlp_exporters() -> None:
    # Nothing listens: the exports of a metric, a span and a log record every 100 ms fail at once
    # without loading gRPC/protobuf, and so does the flush at exit (a worker recycled every
    # WORKER_TTL tasks pays for none of it).
    code = (
        "import logging, sys, time\n"
        "from jobbers.telemetry import TASKS_PROCESSED, setup_telemetry, submit_span\n"
        "t = setup_telemetry('probe')\n"
        "TASKS_PROCESSED.add(('default', 'noop', 'completed'))\n"
        "with submit_span('noop', 'default'):\n"
        "    logging.getLogger('probe').warning('a record to export')\n"
        "time.sleep(0.6)\n"
        "t.shutdown()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('grpc', 'opentelemetry.exporter.otlp', "
        "'google.protobuf'))))"
    )
    for protocol in ("grpc", "http/protobuf"):
        env = {**os.environ, "OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", "OTEL_LOGS_EXPORTER": "otlp",
               "OTEL_METRIC_EXPORT_INTERVAL": "100", "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OTEL_BLRP_SCHEDULE_DELAY": "100"}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=True)  # fmt: skip
        assert out.stdout.strip() == "[]", (protocol, out.stdout, out.stderr)


@pytest.mark.parametrize("preference", ["", "CUMULATIVE", "DELTA", "LOWMEMORY", "bogus"])
def test_metric_temporality_is_the_one_the_otlp_exporters_prefer(
    monkeypatch: pytest.MonkeyPatch, preference: str
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    from jobbers.telemetry.providers import otlp_temporality

    if preference:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    else:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", raising=False)
    for exporter_type in (Grpc, Http):
        exporter = exporter_type(endpoint=f"http://127.0.0.1:{free_port()}")
        try:
            preferred = exporter._preferred_temporality
            assert {k: preferred[k] for k in otlp_temporality()} == otlp_temporality()
            assert set(preferred) <= set(otlp_temporality())
        finally:
            exporter.shutdown()


def test_shutdown_probes_the_collector_each_signal_sends_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobbers.telemetry.providers import collector_address

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert collector_address("metrics", "grpc") == ("localhost", 4317)
    assert collector_address("metrics", "http/protobuf") == ("localhost", 4318)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")  # gRPC takes a bare host:port
    assert collector_address("metrics", "grpc") == ("collector", 4317)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://otel.example.com/v1/traces")
    assert collector_address("traces", "http/protobuf") == ("otel.example.com", 443)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "unix:///run/otel.sock")
    assert collector_address("metrics", "grpc") is None  # cannot tell: flushed as if it answered


# -- in-process units -----------------------------------------------------------------------------


def test_submit_span_continues_an_incoming_traceparent_even_without_a_tracer() -> None:
    from jobbers import telemetry

    parent = "00-0af7651916cd43dd8448eb211c4319c6-b7ad6b7169203331-01"
    assert telemetry.current_traceparent() == ""
    with telemetry.submit_span("noop", "default", parent=parent):
        assert telemetry.current_traceparent() == parent  # what the manager stores in NewTask.trace
    assert telemetry.current_traceparent() == ""


def test_histogram_points_are_cumulative_or_deltas_with_otel_bucket_bounds() -> None:
    from jobbers.telemetry.instruments import Histogram

    h = Histogram("h", "ms", "", ("queue",), (1.0, 10.0))
    for value in (0.5, 1.0, 5.0, 50.0):  # 1.0 belongs to the first bucket: (-inf, 1.0]
        h.record(value, ("a",))
    (point,) = h.points(0, 1, delta=False)
    assert (point.count, point.sum, list(point.bucket_counts)) == (4, 56.5, [2, 1, 1])
    assert (point.min, point.max) == (0.5, 50.0)
    assert dict(point.attributes) == {"queue": "a"}
    assert [p.count for p in h.points(0, 2, delta=True)] == [4]
    assert h.points(0, 3, delta=True) == []  # nothing new since the last delta
    h.record(2.0, ("a",))
    (delta,) = h.points(0, 4, delta=True)
    assert (delta.count, delta.sum, list(delta.bucket_counts)) == (1, 2.0, [0, 1, 0])


async def test_manager_submit_span_is_the_parent_of_the_execution_and_cancels_are_counted(
    e2e: E2E, receiver: OtlpReceiver
) -> None:
    e2e.platform.env.update(otel_env(receiver))
    manager = e2e.platform.manager()
    e2e.platform.worker()
    incoming_trace, incoming_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{incoming_trace}-{incoming_span}-01"}
    async with httpx.AsyncClient(base_url=manager.url, timeout=10) as http:
        done = (await http.post("/tasks", json={"name": "noop"}, headers=headers)).json()
        napping = (await http.post("/tasks", json={"name": "nap", "params": {"seconds": 30}})).json()
        await e2e.wait_terminal([done["id"]])
        await e2e.wait_started([napping["id"]])
        assert (await http.post(f"/task/{napping['id']}/cancel")).status_code == 200
        assert (await http.post(f"/task/{napping['id']}/cancel")).status_code in (200, 409)
        await e2e.wait_terminal([napping["id"]])

    counted = ("cancellations_requested", "counter", L(queue="default", task="nap"))
    await wait_until(lambda: summary(receiver, "jobbers-manager").get(counted) in (1.0, 2.0), 10)

    def connected() -> bool:
        received = spans(receiver)
        submit = [s for svc, s in received if svc == "jobbers-manager" and s.name == "task.submit"
                  and attrs(s.attributes).get("jobbers.task.name") == "noop"]
        execute = [s for svc, s in received if s.name == "task.execute"
                   and attrs(s.attributes)["jobbers.task.id"] == done["id"]]
        if not (submit and execute):
            return False
        (sub,), (exe,) = submit, execute
        assert sub.trace_id.hex() == incoming_trace and sub.parent_span_id.hex() == incoming_span
        assert (exe.trace_id, exe.parent_span_id) == (sub.trace_id, sub.span_id)
        return True

    await wait_until(connected, 10)
