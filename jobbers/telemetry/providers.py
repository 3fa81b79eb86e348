"""Provider set-up: OpenTelemetry meter, tracer and log providers exporting over OTLP.

Export uses the standard variables: ``OTEL_SDK_DISABLED``; ``OTEL_{METRICS,TRACES}_EXPORTER``
(``otlp``, the default, or ``none``); ``OTEL_LOGS_EXPORTER`` (``otlp`` turns log export on);
``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL`` (``grpc``, the default, or ``http/protobuf``); and,
read by the exporters themselves, ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_ENDPOINT``, ``_HEADERS``,
``_TIMEOUT``, ``_COMPRESSION``, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_BSP_*``, ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES``. Nothing here touches Redis: the processes feed the instruments.

The OTLP exporters (gRPC or HTTP, with protobuf) are made at their first export, on the SDK's
export threads, and only once a TCP connection to the collector opens: a worker recycled after
``WORKER_TTL`` tasks, which lives well under the metric export interval, does not load them at
start, and loads them at exit only if a collector answers; a process without a collector never
loads them.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk.metrics.export import AggregationTemporality

from jobbers.logs import TaskContextFilter
from jobbers.telemetry.instruments import Histogram, LocalHistogramExporter, register_observables
from jobbers.telemetry.metrics import INSTRUMENTS, SCOPE

log = logging.getLogger(__name__)

#: How long ``Telemetry.shutdown`` may take: a collector that accepts connections and does not
#: answer holds up an exit this long at most.
SHUTDOWN_TIMEOUT_SECONDS = 3.0
#: At shutdown, a collector that cannot be connected to within this long is given up on at once.
PROBE_SECONDS = 0.25

#: signal -> (module under ``opentelemetry.exporter.otlp.proto.<grpc|http>``, exporter class)
_EXPORTERS = {
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "logs": ("_log_exporter", "OTLPLogExporter"),
}
_PROTOCOLS = {"grpc": "grpc", "http/protobuf": "http"}
#: The exporters' default endpoints' ports, by protocol.
_DEFAULT_PORTS = {"grpc": 4317, "http/protobuf": 4318}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip().lower()


def _protocol(signal: str) -> str:
    protocol = _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or "grpc"
    if protocol not in _PROTOCOLS:
        log.warning("OTLP protocol %r is not supported; using http/protobuf", protocol)
        protocol = "http/protobuf"
    return protocol


def _otlp_exporter(signal: str, protocol: str) -> Any:
    """The OTLP exporter for ``signal`` (metrics, traces, logs), imported only when used (gRPC is heavy)."""
    module, name = _EXPORTERS[signal]
    package = f"opentelemetry.exporter.otlp.proto.{_PROTOCOLS[protocol]}"
    return getattr(importlib.import_module(f"{package}.{module}"), name)()


def collector_address(signal: str, protocol: str) -> tuple[str, int] | None:
    """Host and port the exporter of ``signal`` sends to, read from the variables as it reads them;
    None when that cannot be told (then shutdown flushes, bounded, as if the collector answered)."""
    url = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ""
    ).strip()
    if not url:
        return "localhost", _DEFAULT_PORTS[protocol]
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")  # gRPC also takes a bare host:port
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    if not host or port is None:
        return None
    return host, port


def _answers(address: tuple[str, int], timeout: float) -> bool:
    """Whether a TCP connection to ``address`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(address, timeout):
            return True
    except OSError:
        return False


def otlp_temporality() -> dict[type, AggregationTemporality]:
    """The temporality the OTLP metric exporter prefers, from
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` as it reads it (without importing it;
    tests/test_telemetry.py checks the two agree)."""
    preference = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "CUMULATIVE")
    preference = preference.upper().strip()
    cumulative, delta = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
    monotonic = {"DELTA": delta, "LOWMEMORY": delta}.get(preference, cumulative)
    observable = delta if preference == "DELTA" else cumulative
    return {
        sdk_metrics.Counter: monotonic,
        sdk_metrics.UpDownCounter: cumulative,
        sdk_metrics.Histogram: monotonic,
        sdk_metrics.ObservableCounter: observable,
        sdk_metrics.ObservableUpDownCounter: cumulative,
        sdk_metrics.ObservableGauge: cumulative,
    }


def _probe(address: tuple[str, int] | None) -> Callable[[], bool]:
    """Whether the collector at ``address`` answers now (one that cannot be told is assumed to)."""
    return lambda: address is None or _answers(address, PROBE_SECONDS)


class _DeferredExporter:
    """A span or log exporter made at its first export (on the SDK's batching thread) once
    ``reachable()`` says a collector answers (until then each export fails at once); once shut
    down, it exports nothing more (without being made, if it never was)."""

    def __init__(self, make: Callable[[], Any], failure: object, reachable: Callable[[], bool]) -> None:
        self._make = make
        self._failure = failure
        self._reachable = reachable
        self._inner: Any = None
        self._stopped = False
        self._lock = threading.Lock()

    def export(self, batch: Sequence[Any]) -> Any:
        with self._lock:
            if self._stopped:
                return self._failure
            if self._inner is None:
                if not self._reachable():
                    return self._failure
                self._inner = self._make()
            inner = self._inner
        return inner.export(batch)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        inner = self._inner
        return True if inner is None else bool(inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            inner = self._inner
        if inner is not None:
            inner.shutdown()


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
    #: The exporters of spans and logs (made at their first export).
    exporters: list[_DeferredExporter] = field(default_factory=list)
    #: Where each signal's collector listens (None: cannot be told).
    collectors: set[tuple[str, int] | None] = field(default_factory=set)
    _stopped: bool = field(default=False, repr=False)

    @property
    def metrics_enabled(self) -> bool:
        return self.meter_provider is not None

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
        """Force-flush pending metrics, spans and logs, then stop; gives up after ``timeout`` seconds
        (no hang without a collector: the exporters' retries are abandoned with the process).

        A collector known not to answer (the last metric export failed, or a TCP connection to it
        does not open within ``PROBE_SECONDS``) is given up on at once: nothing is flushed, and an
        exporter never made is never loaded.
        """
        if self._stopped:
            return
        self._stopped = True
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)

        def stop(ms: int) -> None:
            exporter = self.metric_exporter
            unreachable = (exporter is not None and exporter.failing) or not all(
                address is None or _answers(address, PROBE_SECONDS) for address in self.collectors
            )
            if unreachable:  # abandon retries that no collector will answer
                if exporter is not None:
                    exporter.shutdown()
                for deferred in self.exporters:
                    deferred.shutdown()
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
        protocol = _protocol("metrics")
        address = collector_address("metrics", protocol)
        telemetry.collectors.add(address)
        exporter = LocalHistogramExporter(
            lambda: _otlp_exporter("metrics", protocol),
            resource,
            SCOPE,
            histograms,
            otlp_temporality(),
            reachable=_probe(address),
        )
        reader = PeriodicExportingMetricReader(exporter)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        metrics.set_meter_provider(meter_provider)
        register_observables(meter_provider.get_meter(SCOPE), INSTRUMENTS)
        telemetry.meter_provider, telemetry.metric_exporter = meter_provider, exporter

    if _signal_enabled("OTEL_TRACES_EXPORTER", "otlp"):
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        protocol = _protocol("traces")
        address = collector_address("traces", protocol)
        telemetry.collectors.add(address)
        spans = _DeferredExporter(
            lambda: _otlp_exporter("traces", protocol), SpanExportResult.FAILURE, _probe(address)
        )
        telemetry.exporters.append(spans)
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(cast(SpanExporter, spans)))
        trace.set_tracer_provider(tracer_provider)
        telemetry.tracer_provider = tracer_provider

    if _env("OTEL_LOGS_EXPORTER") == "otlp":
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        protocol = _protocol("logs")
        address = collector_address("logs", protocol)
        telemetry.collectors.add(address)
        records = _DeferredExporter(lambda: _otlp_exporter("logs", protocol), None, _probe(address))
        telemetry.exporters.append(records)
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(cast(Any, records)))
        handler = LoggingHandler(logger_provider=logger_provider)
        handler.addFilter(TaskContextFilter())
        logging.getLogger().addHandler(handler)
        telemetry.logger_provider, telemetry.log_handler = logger_provider, handler
    return telemetry
