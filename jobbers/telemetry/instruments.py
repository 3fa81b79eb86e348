"""Cheap instruments: metrics that cost a dict update per measurement, collected by the OpenTelemetry SDK.

The SDK's synchronous instruments cost about 10 µs per call (attribute validation and hashing on
every measurement), a tenth of the worker's whole budget per task. These aggregate in-process
instead, keyed by a tuple of label values, and the SDK still does the collecting and exporting on
its own thread: counters and gauges become observable instruments whose callbacks read the local
values (``register_observables``), and histogram points are added to each export batch by
``LocalHistogramExporter``, which wraps the OTLP exporter (made at its first export, so a process
that never exports never loads it).

Measurements are made from one thread (the process's event loop); the exporting thread only reads,
copying each dict or bucket list in one step. The instruments themselves are defined, with their
names and labels, in ``jobbers.telemetry.metrics``.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Metric as MetricData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

Labels = tuple[str, ...]
#: Start of every cumulative series: this process's start, near enough.
START_NS = time.time_ns()


class _Instrument:
    """A named metric with fixed label names; measurements carry the label values as a tuple."""

    def __init__(self, name: str, unit: str, description: str, labels: Labels) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.labels = labels
        self._attributes: dict[Labels, dict[str, str]] = {}

    def attributes(self, values: Labels) -> dict[str, str]:
        """The attribute dict for these label values (built once, then reused)."""
        attrs = self._attributes.get(values)
        if attrs is None:
            attrs = self._attributes[values] = dict(zip(self.labels, values, strict=True))
        return attrs


class Counter(_Instrument):
    """A running total per label set; exported as an OTel Counter (an UpDownCounter if ``up_down``)."""

    def __init__(self, name: str, unit: str, description: str, labels: Labels, up_down: bool = False) -> None:
        super().__init__(name, unit, description, labels)
        self.up_down = up_down
        self._totals: dict[Labels, int] = {}

    def add(self, values: Labels, amount: int = 1) -> None:
        totals = self._totals
        totals[values] = totals.get(values, 0) + amount

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(total, self.attributes(key)) for key, total in self._totals.copy().items()]


class Gauge(_Instrument):
    """The latest value per label set; exported as an OTel Gauge."""

    def __init__(self, name: str, unit: str, description: str, labels: Labels) -> None:
        super().__init__(name, unit, description, labels)
        self._values: dict[Labels, float] = {}

    def replace(self, values: dict[Labels, float]) -> None:
        """Set every series at once; series not given stop being reported."""
        self._values = values

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, self.attributes(key)) for key, value in self._values.items()]


class _Cell:
    __slots__ = ("buckets", "max", "min", "total")

    def __init__(self, n_buckets: int) -> None:
        self.buckets = [0] * n_buckets
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")


class Histogram(_Instrument):
    """Explicit-bucket histogram per label set (OTel semantics: bucket ``i`` holds values in
    ``(bounds[i-1], bounds[i]]``). A point's count is derived from its copied buckets, so it is
    always consistent with them even while the event loop keeps recording."""

    def __init__(
        self, name: str, unit: str, description: str, labels: Labels, bounds: Sequence[float]
    ) -> None:
        super().__init__(name, unit, description, labels)
        self.bounds = tuple(bounds)
        self._cells: dict[Labels, _Cell] = {}
        self._exported: dict[Labels, tuple[list[int], float]] = {}  # for delta temporality

    def record(self, value: float, values: Labels) -> None:
        cell = self._cells.get(values)
        if cell is None:
            cell = self._cells.setdefault(values, _Cell(len(self.bounds) + 1))
        cell.buckets[bisect_left(self.bounds, value)] += 1
        cell.total += value
        if value < cell.min:
            cell.min = value
        if value > cell.max:
            cell.max = value

    def points(self, start_ns: int, now_ns: int, delta: bool) -> list[HistogramDataPoint]:
        """Data points for an export. With ``delta``, only what came since the last export (min
        and max stay cumulative: they cannot be taken apart)."""
        points = []
        for key, cell in self._cells.copy().items():
            buckets, total = list(cell.buckets), cell.total
            if delta:
                before, before_total = self._exported.get(key, ([0] * len(buckets), 0.0))
                self._exported[key] = (buckets, total)
                buckets = [b - a for b, a in zip(buckets, before, strict=True)]
                total -= before_total
            count = sum(buckets)
            if count:
                points.append(
                    HistogramDataPoint(
                        attributes=self.attributes(key),
                        start_time_unix_nano=start_ns,
                        time_unix_nano=now_ns,
                        count=count,
                        sum=total,
                        bucket_counts=buckets,
                        explicit_bounds=self.bounds,
                        min=cell.min,
                        max=cell.max,
                    )
                )
        return points


def register_observables(meter: metrics.Meter, instruments: Iterable[Counter | Gauge | Histogram]) -> None:
    """Create the SDK's observable instrument for each counter and gauge, reading its local values."""
    for inst in instruments:
        if isinstance(inst, Counter):
            create = (
                meter.create_observable_up_down_counter if inst.up_down else meter.create_observable_counter
            )
            create(inst.name, callbacks=[inst.observe], unit=inst.unit, description=inst.description)
        elif isinstance(inst, Gauge):
            meter.create_observable_gauge(
                inst.name, callbacks=[inst.observe], unit=inst.unit, description=inst.description
            )


class LocalHistogramExporter(MetricExporter):
    """Wraps the OTLP metric exporter; adds the histograms' points to each batch, in its temporality.

    The OTLP exporter is made by ``make_inner`` at the first export, on the SDK's exporting thread
    (importing gRPC and protobuf costs a start-up ~0.1 s and ~10 MB), and only once ``reachable()``
    says a collector answers (until then each export fails at once); ``temporality`` must be the
    one it prefers (``providers.otlp_temporality``). After ``shutdown`` nothing more is exported.

    The SDK skips exporting an empty collection, so each histogram should be recorded together with
    a counter: then a collection with histogram points always has something to carry them.
    """

    def __init__(
        self,
        make_inner: Callable[[], MetricExporter],
        resource: Resource,
        scope: str,
        histograms: Sequence[Histogram],
        temporality: Mapping[type, AggregationTemporality] | None = None,
        reachable: Callable[[], bool] | None = None,
    ) -> None:
        # No preferred aggregation: it only concerns the SDK's histograms, and there are none.
        super().__init__(preferred_temporality=dict(temporality) if temporality else None)
        self._make_inner = make_inner
        self._reachable = reachable
        self._inner: MetricExporter | None = None
        self._lock = threading.Lock()
        self._resource = resource
        self._scope = scope
        self._histograms = histograms
        self._temporality = (temporality or {}).get(SdkHistogram, AggregationTemporality.CUMULATIVE)
        self._since_ns = START_NS
        self._failed = False
        self._exporting_since: float | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        """Whether the OTLP exporter has been made (an export was attempted)."""
        return self._inner is not None

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._stopped:
            return MetricExportResult.FAILURE
        now = time.time_ns()
        delta = self._temporality is AggregationTemporality.DELTA
        extra = []
        for histogram in self._histograms:
            points = histogram.points(self._since_ns if delta else START_NS, now, delta)
            if points:
                data = HistogramData(data_points=points, aggregation_temporality=self._temporality)
                extra.append(MetricData(histogram.name, histogram.description, histogram.unit, data))
        self._since_ns = now
        if extra:
            metrics_data = self._merge(metrics_data, extra)
        self._exporting_since = time.monotonic()
        try:
            with self._lock:
                if self._inner is None:
                    if self._reachable is not None and not self._reachable():
                        self._failed = True  # no collector: the exporter is not even loaded
                        return MetricExportResult.FAILURE
                    self._inner = self._make_inner()
                inner = self._inner
            result = inner.export(metrics_data, timeout_millis=timeout_millis)
        finally:
            self._exporting_since = None
        self._failed = result is not MetricExportResult.SUCCESS
        return result

    @property
    def failing(self) -> bool:
        """The last export failed, or one has been retrying for over a second: no collector?"""
        since = self._exporting_since
        return self._failed or (since is not None and time.monotonic() - since > 1.0)

    def _merge(self, data: MetricsData, extra: list[MetricData]) -> MetricsData:
        first, *rest = data.resource_metrics or [ResourceMetrics(self._resource, [], "")]
        scopes = list(first.scope_metrics)
        for i, scope in enumerate(scopes):
            if scope.scope.name == self._scope:
                scopes[i] = ScopeMetrics(scope.scope, [*scope.metrics, *extra], scope.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(InstrumentationScope(self._scope), extra, ""))
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            inner = self._inner
        if inner is not None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)
