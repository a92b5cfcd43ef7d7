"""What a running Triton is doing now, per model and version: two snapshots of its statistics (the typed client's
``statistics()``) and Prometheus metrics, an interval apart, give requests/s, failures, p50/p99 queue and compute
time, the batch size achieved and how busy the instances are.

    with TritonClient(url, retry=None) as client:
        monitor = Monitor(client, metrics_url)
        before = monitor.snapshot()
        time.sleep(2)
        for row in monitor.measure(before, monitor.snapshot()):
            print(row.model, row.version, row.requests_per_s)

Where the numbers come from:

- counts and rates: the statistics (exact; Triton counts warmup requests too). Failures are requests the model
  failed (``fail``); a request Triton rejects before the model (an unknown input, a wrong shape) counts nowhere.
- queue and compute p50/p99: the quantiles of ``nv_inference_queue_summary_us`` and
  ``nv_inference_compute_infer_summary_us`` when Triton exports them (``--metrics-config=summary_latencies=true``,
  which tritonize's launchers pass); they cover Triton's sliding window, not exactly this interval. Otherwise the
  interval's mean per request, from the statistics (``latency_source`` says which). Compute is the model's
  inference time (``compute_infer``), the same quantity in both cases.
- batch: inferences per execution over the interval.
- instance use: execution time (input + infer + output, per execution from the per-batch-size statistics) per
  second of wall time, divided by the instance count of the model's config: 1.0 means every instance was busy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from tritonize.core.log import logger
from tritonize.core.observability import SUMMARY_METRIC

from .bench import metrics as prometheus
from .errors import ModelNotFoundError

QUANTILES = {"p50": "0.5", "p99": "0.99"}  # the summaries' quantile labels the monitor reads
_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")
_log = logger(__name__)


class StatisticsSource(Protocol):
    """What the monitor needs of a client (``TritonClient`` is one)."""

    def statistics(self, name: str = "", version: str = "", timeout_s: float | None = None) -> list[dict[str, Any]]:
        ...

    def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        ...


@dataclass(frozen=True)
class VersionStats:
    """One model version's cumulative statistics, as Triton reports them (nanoseconds)."""

    model: str
    version: str
    success: int = 0
    fail: int = 0
    inference_count: int = 0
    execution_count: int = 0
    stage_count: dict[str, int] = field(default_factory=dict)  # queue, compute_*: requests counted
    stage_ns: dict[str, int] = field(default_factory=dict)  # their total time
    batch_executions: dict[int, int] = field(default_factory=dict)  # batch size -> executions
    busy_ns: int = 0  # execution time summed over executions (per-batch-size compute input + infer + output)

    @classmethod
    def parse(cls, entry: dict[str, Any]) -> VersionStats:
        """One entry of ``statistics()`` (HTTP or gRPC form: gRPC leaves out zero fields)."""
        stats = entry.get("inference_stats", {})

        def count(key: str) -> int:
            return int(stats.get(key, {}).get("count", 0))

        def ns(key: str) -> int:
            return int(stats.get(key, {}).get("ns", 0))

        executions: dict[int, int] = {}
        busy = 0
        for batch in entry.get("batch_stats", []):
            size = int(batch.get("batch_size", 0))
            executions[size] = executions.get(size, 0) + int(batch.get("compute_infer", {}).get("count", 0))
            busy += sum(int(batch.get(f"compute_{p}", {}).get("ns", 0)) for p in ("input", "infer", "output"))
        return cls(str(entry.get("name", "")), str(entry.get("version", "")), count("success"), count("fail"),
                   int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0)),
                   {s: count(s) for s in _STAGES}, {s: ns(s) for s in _STAGES}, executions, busy)

    def counters(self) -> list[int]:
        return [self.success, self.fail, self.inference_count, self.execution_count, self.busy_ns,
                *self.stage_count.values(), *self.stage_ns.values()]


@dataclass(frozen=True)
class Snapshot:
    """Statistics of every (selected) model version and the metrics text's samples, read at ``time`` (monotonic
    seconds); ``metrics`` is None when the endpoint did not answer."""

    time: float
    at: str  # wall clock, ISO 8601 UTC
    stats: dict[tuple[str, str], VersionStats]
    metrics: prometheus.Samples | None


@dataclass(frozen=True)
class Latency:
    """Milliseconds per request over the interval: ``mean`` from the statistics; ``p50``/``p99`` from the
    summaries (None where they are not exported or no request ran)."""

    mean: float | None
    p50: float | None
    p99: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p99": self.p99, "mean": self.mean}


@dataclass(frozen=True)
class ModelActivity:
    """One model version over one interval, and its cumulative counts at the interval's end."""

    model: str
    version: str
    interval_s: float
    success: int  # in the interval
    fail: int
    inferences: int
    executions: int
    queue: Latency
    compute: Latency
    latency_source: str  # "summary" (quantiles from Triton's summaries) or "average" (the interval's mean)
    instances: int | None  # from the model's config; None for a model without instances (an ensemble)
    busy_s: float  # execution time spent in the interval
    cumulative: VersionStats

    @property
    def requests_per_s(self) -> float:
        return self.success / self.interval_s

    @property
    def failures_per_s(self) -> float:
        return self.fail / self.interval_s

    @property
    def inferences_per_s(self) -> float:
        return self.inferences / self.interval_s

    @property
    def batch(self) -> float | None:
        """Inferences per execution; None when nothing executed."""
        return self.inferences / self.executions if self.executions else None

    @property
    def instance_use(self) -> float | None:
        return self.busy_s / self.interval_s / self.instances if self.instances else None

    def as_dict(self) -> dict[str, Any]:
        """The ``--output json`` record (documented in tritonize/cli/monitor.py)."""
        c = self.cumulative
        return {
            "model": self.model, "version": self.version,
            "requests_per_s": self.requests_per_s, "inferences_per_s": self.inferences_per_s,
            "failures": self.fail, "failures_per_s": self.failures_per_s,
            "queue_ms": self.queue.as_dict(), "compute_ms": self.compute.as_dict(),
            "latency_source": self.latency_source,
            "batch": self.batch, "instances": self.instances, "instance_use": self.instance_use,
            "interval": {"success": self.success, "fail": self.fail, "inference_count": self.inferences,
                         "execution_count": self.executions},
            "cumulative": {"success": c.success, "fail": c.fail, "inference_count": c.inference_count,
                           "execution_count": c.execution_count,
                           "batch_executions": {str(k): v for k, v in sorted(c.batch_executions.items())}},
        }


def summary_quantiles(samples: prometheus.Samples | None, stage: str, model: str,
                      version: str) -> dict[str, float] | None:
    """``{"p50": ms, "p99": ms}`` of ``nv_inference_<stage>_summary_us`` for one model version; None when the
    summary is not exported (or has no observations in its window: NaN)."""
    if samples is None:
        return None
    name = SUMMARY_METRIC.format(stage=stage)
    by_quantile = {labels.get("quantile"): value for n, labels, value in samples
                   if n == name and labels.get("model") == model and labels.get("version") == version}
    found = {key: by_quantile[q] / 1000 for key, q in QUANTILES.items()
             if q in by_quantile and math.isfinite(by_quantile[q])}
    return found if len(found) == len(QUANTILES) else None


def instance_count(config: dict[str, Any]) -> int | None:
    """Instances the config asks for (Triton fills instance_group in when loading); None when there are none."""
    total = sum(int(group.get("count", 1)) for group in config.get("instance_group", []))
    return total or None


def activity(before: VersionStats | None, after: VersionStats, interval_s: float,
             metrics: prometheus.Samples | None, instances: int | None) -> ModelActivity:
    """One model version over an interval. ``before`` None (the version appeared in the interval) or with a
    counter above ``after``'s (the model was reloaded: its counters restart) counts from zero."""
    if not interval_s > 0:
        raise ValueError(f"interval_s: got {interval_s}, expected seconds > 0")
    if before is None or any(b > a for b, a in zip(before.counters(), after.counters())):
        before = VersionStats(after.model, after.version)

    def delta_count(stage: str) -> int:
        return after.stage_count.get(stage, 0) - before.stage_count.get(stage, 0)

    def mean_ms(stage: str) -> float | None:
        n = delta_count(stage)
        return (after.stage_ns.get(stage, 0) - before.stage_ns.get(stage, 0)) / n / 1e6 if n else None

    quantiles = {stage: summary_quantiles(metrics, stage, after.model, after.version)
                 for stage in ("queue", "compute_infer")}
    from_summary = all(q is not None for q in quantiles.values())

    def latency(stage: str) -> Latency:
        q = quantiles[stage] if delta_count(stage) else None  # an idle interval has no quantiles of its own
        return Latency(mean_ms(stage), q["p50"] if q else None, q["p99"] if q else None)

    return ModelActivity(
        after.model, after.version, interval_s,
        success=after.success - before.success, fail=after.fail - before.fail,
        inferences=after.inference_count - before.inference_count,
        executions=after.execution_count - before.execution_count,
        queue=latency("queue"), compute=latency("compute_infer"),
        latency_source="summary" if from_summary else "average", instances=instances,
        busy_s=(after.busy_ns - before.busy_ns) / 1e9, cumulative=after)


class Monitor:
    """Snapshots of one server. ``models``: only these (all loaded model versions when empty). Model configs are
    read once, for their instance counts."""

    def __init__(self, client: StatisticsSource, metrics_url: str | None, models: tuple[str, ...] = (),
                 timeout_s: float = 10.0) -> None:
        self.client = client
        self.metrics_url = metrics_url
        self.models = models
        self.timeout_s = timeout_s
        self._instances: dict[str, int | None] = {}

    def snapshot(self) -> Snapshot:
        entries: list[dict[str, Any]] = []
        if self.models:
            for name in self.models:
                entries += self.client.statistics(name, timeout_s=self.timeout_s)
        else:
            entries = self.client.statistics(timeout_s=self.timeout_s)
        now = time.monotonic()
        at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        metrics = prometheus.scrape(self.metrics_url, self.timeout_s) if self.metrics_url else None
        stats = {(s.model, s.version): s for s in map(VersionStats.parse, entries)}
        _log.debug(f"snapshot: {len(stats)} model version(s), metrics {'read' if metrics else 'unavailable'}")
        return Snapshot(now, at, stats, metrics)

    def instances(self, model: str) -> int | None:
        if model not in self._instances:
            try:
                self._instances[model] = instance_count(self.client.model_config(model))
            except ModelNotFoundError:  # unloaded since the statistics were read: ask again next time
                return None
        return self._instances[model]

    def measure(self, before: Snapshot, after: Snapshot) -> list[ModelActivity]:
        """Every model version of ``after``, sorted by model and version (numerically)."""
        interval = after.time - before.time
        keys = sorted(after.stats, key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else -1, k[1]))
        return [activity(before.stats.get(key), after.stats[key], interval, after.metrics, self.instances(key[0]))
                for key in keys]
