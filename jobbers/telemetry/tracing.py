"""Traces: the trace context a task carries from its submitter to the worker, and its spans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobbers.telemetry.metrics import SCOPE

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
        cls,
        traceparent: str,
        task_id: str,
        name: str,
        queue: str,
        attempt: int,
        worker_id: str,
        correlation_id: str | None = None,
    ) -> TaskSpan | None:
        if not (traceparent and tracing_enabled()):
            return None
        parent = _PROPAGATOR.extract({"traceparent": traceparent})
        if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
            return None
        attributes: dict[str, str | int] = {
            "jobbers.task.id": task_id,
            "jobbers.task.name": name,
            "jobbers.task.queue": queue,
            "jobbers.task.attempt": attempt,
            "jobbers.worker.id": worker_id,
        }
        if correlation_id:
            attributes["jobbers.task.correlation_id"] = correlation_id
        span = _tracer.start_span(
            "task.execute", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        return cls(span, otel_context.attach(trace.set_span_in_context(span)))

    def end(self, status: str, error_type: str = "", error_message: str = "") -> None:
        """Close the span with the attempt's outcome (``completed``, ``retry``, ``failed`` ...)."""
        self.span.set_attribute("jobbers.task.status", status)
        if error_type:
            self.span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error_message}"))
        self.span.end()
        otel_context.detach(self._token)
