"""Provider set-up: OpenTelemetry meter, tracer and log providers exporting over OTLP.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

from jobbers.logs import TaskContextFilter
from jobbers.telemetry.instruments import Histogram, LocalHistogramExporter, register_observables
from jobbers.telemetry.metrics import INSTRUMENTS, SCOPE

log = logging.getLogger(__name__)

#: How long ``Telemetry.shutdown`` may take: an unreachable collector must not hold up an exit.
SHUTDOWN_TIMEOUT_SECONDS = 3.0

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
