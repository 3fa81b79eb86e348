"""OpenTelemetry for every process: providers, OTLP export, trace propagation on tasks, and every
metric instrument, named in one place (the operations guide lists them).

Measurements cost a dict update each (see ``jobbers.instruments``); the SDK collects and exports
them on its own thread. Each histogram is recorded together with a counter, so a collection that
has histogram points is never empty (the SDK skips exporting empty collections).

Export uses the standard variables: ``OTEL_SDK_DISABLED``; ``OTEL_{METRICS,TRACES}_EXPORTER``
(``otlp``, the default, or ``none``); ``OTEL_LOGS_EXPORTER`` (``otlp`` turns log export on);
``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL`` (``grpc``, the default, or ``http/protobuf``); and,
read by the exporters themselves, ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_ENDPOINT``, ``_HEADERS``,
``_TIMEOUT``, ``_COMPRESSION``, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_BSP_*``, ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES``. Nothing here touches Redis: the processes feed the instruments.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobbers.instruments import Counter, Gauge, Histogram, LocalHistogramExporter, register_observables
from jobbers.logs import TaskContextFilter

log = logging.getLogger(__name__)

#: Instrumentation scope of every instrument and span.
SCOPE = "jobbers"
#: Upper bounds (ms) of the duration histograms' buckets: sub-millisecond no-ops to hour-long jobs.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
    30_000, 60_000, 300_000, 900_000, 3_600_000,
)  # fmt: skip
#: How long ``Telemetry.shutdown`` may take: an unreachable collector must not hold up an exit.
SHUTDOWN_TIMEOUT_SECONDS = 3.0

# -- instruments --------------------------------------------------------------------------------

_QTS = ("queue", "task", "status")
_QTV = ("queue", "task", "version")
_QRT = ("queue", "role", "task")
_MS = DURATION_BUCKETS_MS

# Worker: outcomes (recorded once the outcome is written, so a fenced-off write is not counted).
TASKS_PROCESSED = Counter("tasks_processed", "{task}", "Tasks that reached a terminal status", _QTS)
TASK_EXECUTION_TIME = Histogram(
    "task_execution_time", "ms", "Time from started_at to completed_at", _QTS, _MS
)
TASK_END_TO_END_LATENCY = Histogram(
    "task_end_to_end_latency", "ms", "Time from submitted_at to completed_at", _QTS, _MS
)
TASKS_RETRIED = Counter("tasks_retried", "{task}", "Retry events", _QTV)
TASKS_DEAD_LETTERED = Counter("tasks_dead_lettered", "{task}", "Tasks moved to the dead letter queue", _QTV)
LATE_WRITES_REJECTED = Counter(
    "late_writes_rejected",
    "{write}",
    "Outcomes refused because the task's lease had been recovered (the task ran elsewhere)",
    ("queue", "task"),
)
# Worker: claiming.
TIME_IN_QUEUE = Histogram(
    "time_in_queue",
    "ms",
    "Time from becoming ready (submitted, or promoted when scheduled) to pickup",
    _QRT,
    _MS,
)
TASKS_SELECTED = Counter("tasks_selected", "{task}", "Tasks pulled from queues", _QRT)
TASKS_IN_FLIGHT = Counter(
    "tasks_in_flight", "{task}", "Tasks running in this worker", ("queue", "role"), up_down=True
)
# Manager and Python client.
CANCELLATIONS_REQUESTED = Counter(
    "cancellations_requested", "{task}", "Cancellations accepted (queued ones end at once)", ("queue", "task")
)
# Scheduler and cleaner.
STALLS_RECOVERED = Counter(
    "stalls_recovered",
    "{task}",
    "Tasks taken back from a dead or silent worker; outcome: requeued, stalled, cancelled or hung",
    ("queue", "outcome"),
)
TASKS_PROMOTED = Counter(
    "tasks_promoted", "{task}", "Scheduled and retry-delayed tasks made ready", ("queue",)
)
SCHEDULER_LAG = Histogram(
    "scheduler_lag",
    "ms",
    "Per promotion, how late past its run_at the most overdue task was",
    ("queue",),
    _MS,
)
QUEUE_DEPTH = Gauge("queue_depth", "{task}", "Ready tasks waiting in the queue", ("queue",))
QUEUE_OLDEST_TASK_AGE = Gauge(
    "queue_oldest_task_age", "ms", "How long the oldest ready task has been waiting", ("queue",)
)

INSTRUMENTS: tuple[Counter | Gauge | Histogram, ...] = (
    TASKS_PROCESSED, TASK_EXECUTION_TIME, TASK_END_TO_END_LATENCY, TASKS_RETRIED, TASKS_DEAD_LETTERED,
    LATE_WRITES_REJECTED, TIME_IN_QUEUE, TASKS_SELECTED, TASKS_IN_FLIGHT, CANCELLATIONS_REQUESTED,
    STALLS_RECOVERED, TASKS_PROMOTED, SCHEDULER_LAG, QUEUE_DEPTH, QUEUE_OLDEST_TASK_AGE,
)  # fmt: skip


class _Cancelled(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def name(self) -> str: ...


def record_cancellations(outcomes: Iterable[_Cancelled]) -> None:
    """Count the accepted cancellations (``cancelled`` or ``requested``) among cancel outcomes."""
    for o in outcomes:
        if o.outcome in ("cancelled", "requested"):
            CANCELLATIONS_REQUESTED.add((o.queue, o.name))


class _Recovered(Protocol):
    @property
    def queue(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def dead_lettered(self) -> bool: ...


def record_stalls(outcome: str, tasks: Iterable[_Recovered]) -> None:
    """Count tasks taken back from a worker, and those of them that went to the dead letter queue."""
    for t in tasks:
        STALLS_RECOVERED.add((t.queue, outcome))
        if outcome in ("stalled", "hung") and t.dead_lettered:
            TASKS_DEAD_LETTERED.add((t.queue, t.name, str(t.version)))


# -- traces -------------------------------------------------------------------------------------

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer(SCOPE)
_tracing = False


def tracing_enabled() -> bool:
    """Whether a real tracer provider is installed (by ``setup_telemetry`` or by the application)."""
    global _tracing
    if not _tracing:
        provider = trace.get_tracer_provider()
        _tracing = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    return _tracing


def current_traceparent() -> str:
    """The current span as a W3C ``traceparent`` (to store in ``NewTask.trace``); "" when untraced."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


@contextmanager
def submit_span(name: str, queue: str, parent: str = "") -> Iterator[trace.Span]:
    """A ``task.submit`` span around a submission; call ``current_traceparent()`` inside it.

    ``parent`` is an incoming ``traceparent`` (e.g. an HTTP request's header). Without a tracer
    provider no span is made, but ``parent`` is still current, so the task continues that trace.
    """
    token = otel_context.attach(_PROPAGATOR.extract({"traceparent": parent})) if parent else None
    try:
        if tracing_enabled():
            attributes = {"jobbers.task.name": name, "jobbers.task.queue": queue}
            with _tracer.start_as_current_span(
                "task.submit", kind=SpanKind.PRODUCER, attributes=attributes
            ) as span:
                yield span
        else:
            yield trace.get_current_span()
    finally:
        if token is not None:
            otel_context.detach(token)


class TaskSpan:
    """The ``task.execute`` span of one attempt, a child of the span that submitted the task.

    Started only for tasks that carry a sampled trace context, so untraced work costs nothing.
    It is made current while the task runs, so spans the task code starts nest under it.
    """

    def __init__(self, span: trace.Span, token: Token[otel_context.Context]) -> None:
        self.span = span
        self._token = token

    @classmethod
    def start(
        cls, traceparent: str, task_id: str, name: str, queue: str, attempt: int, worker_id: str
    ) -> TaskSpan | None:
        if not (traceparent and tracing_enabled()):
            return None
        parent = _PROPAGATOR.extract({"traceparent": traceparent})
        if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
            return None
        span = _tracer.start_span(
            "task.execute",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "jobbers.task.id": task_id,
                "jobbers.task.name": name,
                "jobbers.task.queue": queue,
                "jobbers.task.attempt": attempt,
                "jobbers.worker.id": worker_id,
            },
        )
        return cls(span, otel_context.attach(trace.set_span_in_context(span)))

    def end(self, status: str, error_type: str = "", error_message: str = "") -> None:
        """Close the span with the attempt's outcome (``completed``, ``retry``, ``failed`` ...)."""
        self.span.set_attribute("jobbers.task.status", status)
        if error_type:
            self.span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error_message}"))
        self.span.end()
        otel_context.detach(self._token)


# -- providers ----------------------------------------------------------------------------------

#: signal -> (module under ``opentelemetry.exporter.otlp.proto.<grpc|http>``, exporter class)
_EXPORTERS = {
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "logs": ("_log_exporter", "OTLPLogExporter"),
}
_PROTOCOLS = {"grpc": "grpc", "http/protobuf": "http"}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip().lower()


def _otlp_exporter(signal: str) -> Any:
    """The OTLP exporter for ``signal`` (metrics, traces, logs), imported only when used (gRPC is heavy)."""
    protocol = _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or "grpc"
    if protocol not in _PROTOCOLS:
        log.warning("OTLP protocol %r is not supported; using http/protobuf", protocol)
        protocol = "http/protobuf"
    module, name = _EXPORTERS[signal]
    package = f"opentelemetry.exporter.otlp.proto.{_PROTOCOLS[protocol]}"
    return getattr(importlib.import_module(f"{package}.{module}"), name)()


def _signal_enabled(variable: str, default: str) -> bool:
    value = _env(variable) or default
    if value not in ("otlp", "none"):
        log.warning("%s=%s is not supported (only otlp or none); using otlp", variable, value)
    return value != "none"


def export_interval_seconds() -> float:
    """``OTEL_METRIC_EXPORT_INTERVAL`` (ms, default 60000) in seconds."""
    try:
        return max(float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000, 0.001)
    except ValueError:
        return 60.0


@dataclass
class Telemetry:
    """The providers ``setup_telemetry`` installed (none when the SDK is disabled)."""

    meter_provider: Any = None
    metric_exporter: LocalHistogramExporter | None = None
    tracer_provider: Any = None
    logger_provider: Any = None
    log_handler: logging.Handler | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def metrics_enabled(self) -> bool:
        return self.meter_provider is not None

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Force-flush pending metrics, spans and logs, then stop; gives up after ``timeout`` seconds
        (no hang without a collector: the exporters' retries are abandoned with the process)."""
        if self._stopped:
            return
        self._stopped = True
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)

        def stop(ms: int) -> None:
            # Metrics first: they show whether the collector answers at all.
            exporter = self.metric_exporter
            unreachable = exporter is not None and exporter.failing
            if exporter is not None and unreachable:
                exporter.shutdown()  # abandon retries that no collector will answer
            if self.meter_provider is not None:
                self.meter_provider.shutdown(timeout_millis=ms)
            for provider in (self.tracer_provider, self.logger_provider):
                if provider is not None:
                    if not unreachable:
                        provider.force_flush(ms)
                    provider.shutdown()

        _bounded(stop, timeout)


def _bounded(work: Callable[[int], object], timeout: float) -> None:
    """Run ``work(timeout_ms)`` on a daemon thread and wait at most ``timeout`` seconds for it."""

    def run() -> None:
        try:
            work(max(int(timeout * 1000), 1))
        except Exception:
            log.debug("telemetry flush failed", exc_info=True)

    thread = threading.Thread(target=run, name="telemetry-flush", daemon=True)
    thread.start()
    thread.join(timeout)


def setup_telemetry(service_name: str) -> Telemetry:
    """Install meter and tracer providers (and a log handler with ``OTEL_LOGS_EXPORTER=otlp``)
    exporting over OTLP, configured from the standard ``OTEL_*`` variables.

    Without a collector the process runs as usual: failed exports are retried in the background and
    the SDK's complaints are silenced unless the root logger is at DEBUG. Call ``shutdown()`` at exit.
    """
    if _env("OTEL_SDK_DISABLED") == "true":
        return Telemetry()
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    defaults = {"service.name": service_name, "service.instance.id": f"{socket.gethostname()}:{os.getpid()}"}
    from_env = OTELResourceDetector().detect().attributes
    resource = Resource.create({k: v for k, v in defaults.items() if k not in from_env})
    telemetry = Telemetry()

    if _signal_enabled("OTEL_METRICS_EXPORTER", "otlp"):
        histograms = [i for i in INSTRUMENTS if isinstance(i, Histogram)]
        exporter = LocalHistogramExporter(_otlp_exporter("metrics"), resource, SCOPE, histograms)
        reader = PeriodicExportingMetricReader(exporter)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        metrics.set_meter_provider(meter_provider)
        register_observables(meter_provider.get_meter(SCOPE), INSTRUMENTS)
        telemetry.meter_provider, telemetry.metric_exporter = meter_provider, exporter

    if _signal_enabled("OTEL_TRACES_EXPORTER", "otlp"):
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(_otlp_exporter("traces")))
        trace.set_tracer_provider(tracer_provider)
        telemetry.tracer_provider = tracer_provider

    if _env("OTEL_LOGS_EXPORTER") == "otlp":
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(_otlp_exporter("logs")))
        handler = LoggingHandler(logger_provider=logger_provider)
        handler.addFilter(TaskContextFilter())
        logging.getLogger().addHandler(handler)
        telemetry.logger_provider, telemetry.log_handler = logger_provider, handler
    return telemetry
