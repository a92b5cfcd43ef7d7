"""One result row per load level, in perf_analyzer's vocabulary, and its CSV format (times in microseconds).

Both engines fill ``LevelResult``; ``write_csv`` writes perf_analyzer's columns in its order, ``--verbose-csv`` ones
included (``Avg latency`` only when an average was measured, as perf_analyzer leaves it out after ``--percentile``;
``request/response``; ``response wait`` beside ``Avg latency``), then ours (``Errors``, ``Requests``, ``Stable``),
with rows sorted by ascending throughput, as perf_analyzer does, so tools that read its CSV (Model Analyzer) read
ours. A level where no request completed is left out, as perf_analyzer writes no row for a level it could not
measure (Model Analyzer's reader fails on empty cells); report.json and report.md keep it. ``read_csv`` reads
either by header name.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

LEVEL_COLUMN = {"concurrency": "Concurrency", "request_rate": "Request Rate"}
TIME_COLUMNS = {  # CSV header -> LevelResult field, microseconds
    "Client Send": "client_send_us",
    "Network+Server Send/Recv": "network_us",
    "Server Queue": "server_queue_us",
    "Server Compute Input": "server_compute_input_us",
    "Server Compute Infer": "server_compute_infer_us",
    "Server Compute Output": "server_compute_output_us",
    "Client Recv": "client_recv_us",
}
PERCENTILES = (50, 90, 95, 99)
VERBOSE_COLUMNS = ("Avg latency", "request/response", "response wait")  # perf_analyzer's --verbose-csv ones
OUR_COLUMNS = ("Errors", "Requests", "Stable")
EXTRA_COLUMNS = (*VERBOSE_COLUMNS, *OUR_COLUMNS)
# 2019 perf_client wrote one "Server Compute" column; its value is the model's execution, which Triton later split
# into compute input / infer / output: it is read as compute infer (issue 10, item 13).
OLD_COMPUTE_COLUMN = "Server Compute"


@dataclass
class LevelResult:
    mode: str  # concurrency | request_rate
    level: float  # concurrent requests, or requests per second
    throughput: float  # inferences per second (requests × batch size)
    percentiles_us: dict[int, float]  # 50, 90, 95, 99 and any extra one asked for
    avg_us: float | None = None  # perf_analyzer reports no average when --percentile is given
    client_send_us: float = 0.0
    network_us: float = 0.0
    server_queue_us: float = 0.0
    server_compute_input_us: float = 0.0
    server_compute_infer_us: float = 0.0
    server_compute_output_us: float = 0.0
    client_recv_us: float = 0.0
    requests: int = 0  # completed in the measured windows
    errors: int = 0
    stable: bool = True
    window_s: float = 0.0  # measured time the throughput is over
    server_request_us: float | None = None  # Triton's own per-request total (statistics), when known
    server_requests: int | None = None  # requests Triton counted as successful over the same windows
    latencies_us: list[float] = field(default_factory=list, repr=False)  # raw, measured windows only

    @property
    def error_rate(self) -> float:
        total = self.requests + self.errors
        return self.errors / total if total else 0.0

    @property
    def server_breakdown_us(self) -> float:
        return (self.server_queue_us + self.server_compute_input_us + self.server_compute_infer_us
                + self.server_compute_output_us)


def header(mode: str, rows: Sequence[LevelResult]) -> list[str]:
    extra = sorted({p for r in rows for p in r.percentiles_us} - set(PERCENTILES))
    # "response wait" is average latency - client send - client recv: without an average it cannot be computed.
    verbose = VERBOSE_COLUMNS if any(r.avg_us is not None for r in rows) else ("request/response",)
    return [LEVEL_COLUMN[mode], "Inferences/Second", *TIME_COLUMNS, *(f"p{p} latency" for p in PERCENTILES),
            *(f"p{p} latency" for p in extra), *verbose, *OUR_COLUMNS]


def _measured(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number(value: float) -> str:
    if not _measured(value):
        return ""
    return str(round(value)) if float(value).is_integer() or abs(value) >= 100 else f"{value:g}"


def _us(value: float | None) -> str:
    """A time in whole microseconds, as perf_analyzer writes them; empty when not measured (None, NaN)."""
    return "" if value is None or not math.isfinite(value) else str(round(value))


def _response_wait(r: LevelResult) -> float | None:
    """perf_analyzer's "response wait": the request's time less the client's own send and receive work."""
    if r.avg_us is None or not math.isfinite(r.avg_us):
        return None
    return max(r.avg_us - r.client_send_us - r.client_recv_us, 0.0)


def write_csv(rows: Sequence[LevelResult], path: Path) -> None:
    if not rows:
        raise UsageError("no results to write")
    mode = rows[0].mode
    columns = header(mode, rows)
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in sorted((r for r in rows if r.requests), key=lambda r: r.throughput):
            values = {LEVEL_COLUMN[mode]: _number(r.level),
                      "Inferences/Second": f"{r.throughput:g}" if _measured(r.throughput) else "",
                      **{col: _us(getattr(r, attr)) for col, attr in TIME_COLUMNS.items()},
                      **{f"p{p} latency": _us(v) for p, v in r.percentiles_us.items()},
                      "Avg latency": _us(r.avg_us), "request/response": _us(r.client_send_us + r.client_recv_us),
                      "response wait": _us(_response_wait(r)), "Errors": str(r.errors),
                      "Requests": str(r.requests), "Stable": "yes" if r.stable else "no"}
            writer.writerow([values.get(c, "") for c in columns])


def read_csv(path: Path) -> list[LevelResult]:
    """perf_analyzer's CSV (or ours), by header name; rows come back ordered by load level."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        mode = next((m for m, col in LEVEL_COLUMN.items() if col in columns), None)
        if mode is None or "Inferences/Second" not in columns:
            raise UsageError(f"{path}: not a perf_analyzer CSV (columns {columns[:3]}...), expected "
                             "'Concurrency' or 'Request Rate' and 'Inferences/Second'")
        rows = []
        for line in reader:
            percentiles = {int(col[1:].split()[0]): float(v) for col, v in line.items()
                           if col and col.startswith("p") and col.endswith(" latency") and v not in ("", None)}
            times = {attr: float(line[col]) for col, attr in TIME_COLUMNS.items() if line.get(col) not in ("", None)}
            if line.get(OLD_COMPUTE_COLUMN) not in ("", None) and not any(
                    attr.startswith("server_compute_") for attr in times):
                times["server_compute_infer_us"] = float(line[OLD_COMPUTE_COLUMN])  # see OLD_COMPUTE_COLUMN
            row = LevelResult(
                mode=mode, level=float(line[LEVEL_COLUMN[mode]]), throughput=float(line["Inferences/Second"]),
                percentiles_us=percentiles,
                avg_us=float(line["Avg latency"]) if line.get("Avg latency") else None,
                requests=int(line.get("Requests") or 0), errors=int(line.get("Errors") or 0),
                stable=(line.get("Stable") or "yes") != "no",
            )
            for attr, value in times.items():
                setattr(row, attr, value)
            rows.append(row)
    return sorted(rows, key=lambda r: r.level)
