"""Measure load levels with the built-in generator: warm-up, windows, stability, and one ``LevelResult`` each.

Per level: warm up, then measure consecutive windows of ``interval_s``; a request belongs to the window in
which it completed. After each window, perf_analyzer's stability rule: the last three windows' throughput
and latency (average, or the chosen percentile) each within ±``stability`` of their mean; at most
``max_trials`` windows. The result merges those three windows: throughput = completed requests × batch /
their time; percentiles by nearest rank over their raw latencies; the server-side breakdown from deltas of
Triton's statistics at the same window boundaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tritonize.core.log import logger, progress
from tritonize.core.stats import percentile

from ..client import TritonClient
from ..errors import InferenceTimeoutError, ServerUnavailableError, UsageError
from ..model_info import ModelInfo
from .loadgen import Record, Target, start_workers
from .results import PERCENTILES, LevelResult


@dataclass(frozen=True)
class Settings:
    interval_s: float = 2.0
    warmup_s: float = 1.0
    stability: float = 0.10
    max_trials: int = 10
    percentile: int | None = None  # stabilise on this percentile instead of the average (and report it)
    workers: int = 1
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.warmup_s < 0:
            raise UsageError(f"measurement interval {self.interval_s} s / warm-up {self.warmup_s} s: expected > 0")
        if not 0 < self.stability < 1:
            raise UsageError(f"stability: got {self.stability}, expected a fraction in (0, 1), e.g. 0.1 for ±10%")
        if self.max_trials < 3:
            raise UsageError(f"max_trials: got {self.max_trials}, expected >= 3 (stability needs three windows)")
        if self.workers < 1:
            raise UsageError(f"workers: got {self.workers}, expected >= 1")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch_size: got {self.batch_size!r}, expected an integer >= 1 (samples per request)")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise UsageError(f"percentile: got {self.percentile}, expected 1..99")


@dataclass
class _Window:
    records: list[Record]
    start: float
    end: float
    stats: dict[str, int] | None  # cumulative server statistics at the window's end


def _drop_old_records(windows: list[_Window], keep: int = 4) -> None:
    """Free the records of windows older than the last ``keep``: the stability rule and the result read the
    last three, and only the counters of the one before them (a long run would otherwise hold every
    request it made). The windows themselves stay, for their count, boundaries and counters."""
    for w in windows[-keep - 1::-1]:
        if not w.records:
            break  # everything older was freed before
        w.records = []


def _latencies(records: Sequence[Record]) -> list[float]:
    return sorted((r.end - r.start) * 1e6 for r in records if r.ok)


def _stable(windows: Sequence[_Window], settings: Settings) -> bool:
    last = windows[-3:]
    if len(last) < 3:
        return False
    rates = [sum(r.ok for r in w.records) / (w.end - w.start) for w in last]
    lat = [percentile(_latencies(w.records), settings.percentile) if settings.percentile
           else float(np.mean(_latencies(w.records) or [math.nan])) for w in last]

    def within(values: list[float]) -> bool:
        mean = float(np.mean(values))
        return mean > 0 and all(abs(v - mean) <= settings.stability * mean for v in values)

    return within(rates) and within(lat)


# How long a statistics call at a window boundary may take: a server that died is reported within one window
# plus this (the call retries while the server is unreachable).
PROBE_TIMEOUT_S = 5.0


def server_counters(client: TritonClient | None, model: str, version: str, what: str = "") -> dict[str, int] | None:
    """Cumulative request count and ns per stage from Triton's statistics API."""
    if client is None:
        return None
    try:
        stats = client.statistics(model, version, timeout_s=PROBE_TIMEOUT_S)
    except (ServerUnavailableError, InferenceTimeoutError) as exc:
        raise ServerUnavailableError(f"{what or model}: the server at {client.endpoint.address} stopped answering "
                                     f"during the measurement (died?): {exc}") from exc
    out: dict[str, int] = {}
    for entry in stats:  # all versions served, when no version is given
        inference = entry.get("inference_stats", {})
        for stage in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            values = inference.get(stage, {})
            out[f"{stage}_count"] = out.get(f"{stage}_count", 0) + int(values.get("count", 0))
            out[f"{stage}_ns"] = out.get(f"{stage}_ns", 0) + int(values.get("ns", 0))
    return out


def _per_request_us(before: Mapping[str, int], after: Mapping[str, int], stage: str) -> float:
    count = after[f"{stage}_count"] - before[f"{stage}_count"]
    return (after[f"{stage}_ns"] - before[f"{stage}_ns"]) / count / 1e3 if count else 0.0


def _result(mode: str, level: float, windows: Sequence[_Window], before: _Window | None, settings: Settings,
            stable: bool) -> LevelResult:
    records = [r for w in windows for r in w.records]
    ok = [r for r in records if r.ok]
    latencies = _latencies(records)
    span = windows[-1].end - windows[0].start
    wanted = sorted({*PERCENTILES, *([settings.percentile] if settings.percentile else [])})
    result = LevelResult(
        mode=mode, level=level, throughput=len(ok) * settings.batch_size / span,
        percentiles_us={p: percentile(latencies, p) for p in wanted},
        avg_us=float(np.mean(latencies)) if latencies else math.nan,
        client_send_us=float(np.mean([r.send_us for r in ok])) if ok else 0.0,
        client_recv_us=float(np.mean([r.recv_us for r in ok])) if ok else 0.0,
        requests=len(ok), errors=len(records) - len(ok), stable=stable, window_s=span, latencies_us=latencies,
    )
    first, last = (before.stats if before else None), windows[-1].stats
    if first is not None and last is not None:
        result.server_queue_us = _per_request_us(first, last, "queue")
        result.server_compute_input_us = _per_request_us(first, last, "compute_input")
        result.server_compute_infer_us = _per_request_us(first, last, "compute_infer")
        result.server_compute_output_us = _per_request_us(first, last, "compute_output")
        result.server_request_us = _per_request_us(first, last, "success")
        result.server_requests = last["success_count"] - first["success_count"]
        result.network_us = max((result.avg_us or 0.0) - result.server_request_us - result.client_send_us
                                - result.client_recv_us, 0.0)
    return result


_log = logger(__name__)


def _collect(workers: Sequence[Any], pending: list[Record], until: float) -> None:
    while True:
        for w in workers:
            pending.extend(w.drain())
        left = until - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.05, left))


def measure_level(target: Target, level: float, settings: Settings,
                  stats_client: TritonClient | None = None) -> LevelResult:
    """Drive one load level until three stable windows (or ``max_trials``); see the module docstring."""
    what = f"{'concurrency' if target.mode == 'concurrency' else 'rate'} {level:g}"
    workers = start_workers(target, level, settings.workers)
    # Records reach us late from worker processes (they flush every 0.1 s): a window is closed only after
    # this grace, so records that finished inside it are counted in it.
    grace = 0.05 if settings.workers == 1 else 0.3
    pending: list[Record] = []
    try:
        _wait_until_sending(workers, what)
        start = time.monotonic()
        boundary = start + settings.warmup_s
        _collect(workers, pending, boundary)
        pending = [r for r in pending if r.end >= boundary]
        baseline = _Window([], start, boundary, server_counters(stats_client, target.model, target.version, what))
        windows: list[_Window] = []
        stable = False
        with progress(f"{what}: measurement windows", total=settings.max_trials) as bar:
            while len(windows) < settings.max_trials:
                end = boundary + settings.interval_s
                _collect(workers, pending, end)
                stats = server_counters(stats_client, target.model, target.version, what)  # at the boundary
                _collect(workers, pending, end + grace)
                done = [r for r in pending if boundary <= r.end < end]
                pending = [r for r in pending if r.end >= end]
                windows.append(_Window(done, boundary, end, stats))
                _drop_old_records(windows)
                bar.advance()
                rate = sum(r.ok for r in done) * settings.batch_size / settings.interval_s
                lat = _latencies(done)
                _log.info(f"{what}: window {len(windows)}: {rate:,.0f} infer/s, p99 "
                          f"{percentile(lat, 99) / 1e3:.2f} ms, {len(done) - sum(r.ok for r in done)} errors")
                _warn_if_behind(done, what)
                boundary = end
                if _stable(windows, settings):
                    stable = True
                    break
    finally:
        for w in workers:
            w.stop()
    before = windows[-4] if len(windows) >= 4 else baseline
    if not stable:
        _log.info(f"{what}: not stable within {settings.max_trials} windows (±{settings.stability:.0%}); "
                  "reporting the last three")
    return _result(target.mode, level, windows[-3:], before, settings, stable)


def _wait_until_sending(workers: Sequence[Any], what: str, timeout_s: float = 60.0) -> None:
    """Warm-up starts when every worker has completed a request (a spawned process takes ~1 s to start)."""
    seen = [False] * len(workers)
    deadline = time.monotonic() + timeout_s
    while not all(seen):
        for i, w in enumerate(workers):
            seen[i] = seen[i] or bool(w.drain())
        if time.monotonic() > deadline:
            raise UsageError(f"{what}: the load generator sent nothing within {timeout_s:.0f} s")
        time.sleep(0.02)


def _warn_if_behind(records: Sequence[Record], what: str) -> None:
    """Open loop: requests starting well after their scheduled time mean the generator, not the server, is
    the limit (their latency is still counted from the schedule)."""
    lags = sorted(r.lag_us for r in records)
    if lags and percentile(lags, 99) > 10_000:
        _log.warning(f"{what}: the generator starts requests up to {percentile(lags, 99) / 1e3:.0f} ms late "
                 "(p99): it cannot keep this rate; add --workers or lower the rate")


def make_inputs(info: ModelInfo, batch_size: int, shapes: Mapping[str, Sequence[int]], data: str,
                seed: int = 0) -> dict[str, NDArray[Any]]:
    """One request's inputs from the model's config: ``random``, ``zero``, or an .npz of arrays by name."""
    if data not in ("random", "zero"):
        with np.load(data) as loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        return info.check_inputs(arrays, cast=True)
    rng = np.random.default_rng(seed)
    out = {}
    for spec in info.inputs:
        dims = list(shapes.get(spec.name, spec.dims))
        if len(dims) != len(spec.dims) or any(d < 1 for d in dims):
            raise UsageError(f"input '{spec.name}': dims {list(spec.dims)} need a --shape {spec.name}:D1,D2,... "
                             "with every -1 replaced by a size")
        full = [batch_size, *dims] if info.batching else dims
        dtype = spec.dtype.numpy
        if spec.dtype.is_string:
            value = np.full(full, b"tritonize", dtype=object)
        elif data == "zero":
            value = np.zeros(full, dtype)
        elif dtype.kind == "f":
            value = rng.standard_normal(full).astype(dtype)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, full).astype(bool)
        else:
            value = rng.integers(0, 10, full).astype(dtype)
        out[spec.name] = value
    return info.check_inputs(out)
