"""Reports of a benchmark run: JSON (machine-readable), Markdown, a PNG plot, and perf_analyzer's CSV."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tritonize.core.text import Table

from .results import LevelResult, write_csv
from .sla import GateResult


def levels_table(rows: Sequence[LevelResult]) -> Table:
    """The printed summary: one line per level (times in ms)."""
    level = "concurrency" if rows and rows[0].mode == "concurrency" else "rate/s"
    ms = "{:.2f}".format
    result = Table((level, "infer/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "avg ms", "queue ms", "compute ms",
                    "errors", "stable"), right=True,
                   formats={level: "{:g}".format, "infer/s": "{:,.1f}".format, "p50 ms": ms, "p90 ms": ms,
                            "p95 ms": ms, "p99 ms": ms, "avg ms": ms, "queue ms": ms, "compute ms": ms,
                            "stable": lambda s: "yes" if s else "NO"})
    for r in rows:
        compute = r.server_compute_input_us + r.server_compute_infer_us + r.server_compute_output_us
        result.add(r.level, r.throughput, *(_ms(r.percentiles_us[p]) for p in (50, 90, 95, 99)), _ms(r.avg_us),
                   _ms(r.server_queue_us), _ms(compute), r.errors, r.stable)
    return result


def _ms(us: float | None) -> float | None:
    """Milliseconds; None (an empty cell) when not measured: no average, or NaN where no request completed."""
    return None if us is None or not math.isfinite(us) else us / 1e3


def machine() -> dict[str, Any]:
    """CPU model, usable cores, OS and the versions of what measures: recorded beside every result."""
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
        os_name = f"{pretty} ({platform.system()} {platform.release()})" if pretty else os_name
    versions = {"python": platform.python_version()}
    for dist in ("tritonize", "tritonclient", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu or platform.processor(), "cores": cores, "os": os_name, "arch": platform.machine(),
            "platform": platform.platform(), "versions": versions}


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def markdown(model: str, engine: str, rows: Sequence[LevelResult], gates: Sequence[GateResult],
             metrics: dict[str, Any], info: dict[str, Any]) -> str:
    lines = [f"# Benchmark: {model}", "",
             f"{info['date']} · engine {engine} · {info['machine']['cpu']} ({info['machine']['cores']} cores) · "
             f"server {info.get('server_version', '?')}", "", levels_table(rows).markdown()]
    if gates:
        lines += ["", "| SLA | level | measured | limit | result |", "|---|---|---|---|---|"]
        for g in gates:
            parts = g.describe().split()
            lines.append(f"| `{g.gate.text}` | {g.level:g} | {parts[-4]} | {parts[-2]} | "
                         f"{'pass' if g.passed else '**FAIL**'} |")
    if metrics.get("available"):
        lines += ["", "Triton metrics over the run: " + ", ".join(
            f"{k} {v:,.1f}" for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[LevelResult], path: Path, title: str) -> bool:
    """Latency percentiles and throughput against load; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    levels = [r.level for r in rows]
    fig, left = plt.subplots(figsize=(8, 4.5))
    for p in (50, 90, 95, 99):
        left.plot(levels, [r.percentiles_us[p] / 1e3 for r in rows], marker="o", label=f"p{p}")
    left.set_xlabel("concurrency" if rows[0].mode == "concurrency" else "request rate (/s)")
    left.set_ylabel("latency (ms)")
    right = left.twinx()
    right.plot(levels, [r.throughput for r in rows], color="black", linestyle="--", marker="s", label="infer/s")
    right.set_ylabel("throughput (infer/s)")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, loc="upper left")
    left.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a level where no request completed) as null: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_reports(out: Path, model: str, engine: str, rows: Sequence[LevelResult], gates: Sequence[GateResult],
                  metrics: dict[str, Any], config: dict[str, Any], server: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "server_version": server.get("version"), "model": model, "engine": engine,
            "model_config_sha256": config_hash(config)}
    report = {**info, "levels": [{k: v for k, v in asdict(r).items() if k != "latencies_us"} for r in rows],
              "sla": [{"gate": g.gate.text, "level": g.level, "measured": g.measured, "limit": g.gate.limit,
                       "passed": g.passed} for g in gates],
              "metrics": metrics, "model_config": config}
    written = [out / "report.json", out / "report.md", out / "results.csv"]
    written[0].write_text(json.dumps(_json_safe(report), indent=2, default=str, allow_nan=False) + "\n")
    written[1].write_text(markdown(model, engine, rows, gates, metrics, info))
    write_csv(rows, written[2])
    if plot(rows, out / "latency_throughput.png", f"{model} ({engine})"):
        written.append(out / "latency_throughput.png")
    return written
