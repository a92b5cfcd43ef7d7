"""How many requests/s the built-in load generator (``tritonize bench --engine builtin``) drives on this machine.

    .venv/bin/python benchmarks/loadgen_capacity.py            # full run (~6 min on 2 cores): writes results/
    .venv/bin/python benchmarks/loadgen_capacity.py --quick    # smoke run: writes nothing unless --out DIR

A no-op model (``y = x * 1.0`` on float32 ``[1]``, ONNX, max_batch_size 8, no dynamic batching, one CPU instance,
``intra_op_thread_count`` 1) is built with tritonize's generator (in a child process, so torch stays out of the
measuring process) into a temporary repository and served by ``LocalTriton``: tritonserver 2.51 from pip, with
ONNX executed by tritonize's Python-based stand-in backend (onnxruntime inside Triton's python backend stub
process). That is the cheapest model this server can run, so the generator's ceiling against it is the most a
benchmark on this machine can show.

Every level is one ``run_benchmark`` call (engine ``builtin``, batch 1):

- closed loop at concurrency 1, 4, 16, 64 × workers 1 (an asyncio loop in a thread of this process) and 2 (two
  spawned processes) × gRPC and HTTP, in two passes; the four (protocol, workers) combinations run back to back at
  each concurrency, the order reversing every level and pass (ABBA), so drift hits them alike;
- open loop (constant arrivals) at 750, 1000, 1250, ... req/s, rising until the achieved rate falls short of the
  target by more than 5 % (or errors appear); again all combinations interleaved at each rate.

At the end of every measurement window (the harness's log line for it): CPU time of the generator (this process,
all threads, and its worker processes), of the server (``/proc/<pid>/stat`` utime + stime of tritonserver and of
each descendant: the stub process runs the model), of the whole machine (``/proc/stat``: other processes share it)
and Triton's statistics (successful requests, executions, compute_infer); shares are taken over the measured
windows. ``measure()`` is also what ``dynamic_batching.py`` uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import machine  # benchmarks/machine.py (this folder is on sys.path when a benchmark runs as a script)
import numpy as np

MODEL = "noop"
MODEL_NAME = f"{MODEL}_onnx"
MAX_BATCH_SIZE = 8
PROTOCOLS = ("grpc", "http")
WORKERS = (1, 2)
CONCURRENCY = (1, 4, 16, 64)
QUICK_CONCURRENCY = (4,)
PASSES = 2  # of the closed loop
RATES = (750, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 3500, 4000, 5000)  # open loop, req/s
QUICK_RATES = (300,)
SHORTFALL = 0.05  # an open-loop rate is sustained when achieved >= (1 - SHORTFALL) * target, without errors
EXPLODED = 10.0  # "latency explodes": open-loop p50 this many times the lowest p50 of the combination
QUICK_NOTE = " (--quick: smoke-test numbers, not results)"
RESULTS = Path(__file__).resolve().parent / "results"
THIS = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_model() -> tuple[Any, Any]:
    """The generator's callable source: a no-op module and an example batch (torch only here)."""
    import torch
    from torch import nn

    class Noop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1.0

    return Noop(), torch.zeros(2, 1)


def build_repository(repo: Path) -> None:
    from tritonize.generator.build import build
    from tritonize.generator.config_spec import InstanceGroup
    from tritonize.generator.request import FormatOptions, ModelRequest

    request = ModelRequest(MODEL, f"{THIS}:build_model", formats=("onnx",), max_batch_size=MAX_BATCH_SIZE,
                           instance_group=(InstanceGroup("cpu", 1),), version=1,
                           format_options={"onnx": FormatOptions(parameters={"intra_op_thread_count": "1"})})
    build([request], repo)


# --- CPU accounting ------------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # [0] is field 3 (state): field N is at N - 3


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cpu_s(fields: list[str] | None) -> float:
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else 0.0


def machine_busy_s() -> float:
    """CPU seconds all processes on this machine spent busy (``/proc/stat``: every state but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # user nice system idle iowait irq softirq steal


def snapshot(server_pid: int, stats_client: Any, model: str) -> dict[str, Any]:
    """CPU seconds (user + system) so far of this process (all threads), of its other live descendants (the
    generator's worker processes), of tritonserver and of its descendants (the stubs); Triton's counters."""
    server_tree = {server_pid, *descendants(server_pid)}
    mine = [p for p in descendants(os.getpid()) if p not in server_tree]
    return {
        "t": time.monotonic(),
        "cpu": {"main": _cpu_s(_stat_fields(os.getpid())), "workers": sum(_cpu_s(_stat_fields(p)) for p in mine),
                "tritonserver": _cpu_s(_stat_fields(server_pid)),
                "stubs": sum(_cpu_s(_stat_fields(p)) for p in server_tree - {server_pid}),
                "machine": machine_busy_s()},
        "counters": counters(stats_client, model),
    }


# --- Triton's statistics ---------------------------------------------------------------------------------------
def counters(client: Any, model: str) -> dict[str, int]:
    out = {"inference_count": 0, "execution_count": 0, "success_count": 0, "compute_infer_ns": 0, "success_ns": 0,
           "execution_ns": 0}
    for entry in client.statistics(model):
        for batch in entry.get("batch_stats", []):  # per execution (the per-request stats repeat a batch's time)
            out["execution_ns"] += sum(int(batch.get(k, {}).get("ns", 0))
                                       for k in ("compute_input", "compute_infer", "compute_output"))
        out["inference_count"] += int(entry.get("inference_count", 0))
        out["execution_count"] += int(entry.get("execution_count", 0))
        stats = entry.get("inference_stats", {})
        out["success_count"] += int(stats.get("success", {}).get("count", 0))
        out["success_ns"] += int(stats.get("success", {}).get("ns", 0))
        out["compute_infer_ns"] += int(stats.get("compute_infer", {}).get("ns", 0))
    return out


# --- one measured level ------------------------------------------------------------------------------------------
def measure(server: Any, stats_client: Any, model: str, protocol: str, mode: str, level: float, workers: int,
            settings: Any, log: Any, instances: int = 1) -> dict[str, Any]:
    """One ``run_benchmark`` call at one level. At the end of every measurement window (the harness's log
    line for it) a ``snapshot``: CPU of both sides and Triton's counters; the shares below cover the last windows
    (the last three when there were four or more, else the last two), i.e. the measured ones, not the warm-up."""
    from tritonize.client.bench.harness import BenchRequest, run_benchmark

    url = server.grpc_url if protocol == "grpc" else server.http_url
    request = BenchRequest(model, url=url, protocol=protocol, mode=mode, levels=(float(level),),
                           settings=dataclasses.replace(settings, workers=workers), engine="builtin",
                           metrics_url=server.metrics_url)
    snaps: list[dict[str, Any]] = []

    class AtWindowEnd(logging.Handler):  # the harness logs one line per finished window
        def emit(self, record: logging.LogRecord) -> None:
            if ": window " in record.getMessage():
                snaps.append(snapshot(server.process.pid, stats_client, model))

    handler, windows = AtWindowEnd(), logging.getLogger("tritonize.measure")
    previous = windows.level
    windows.addHandler(handler)
    windows.setLevel(logging.INFO)
    t0 = time.monotonic()
    try:
        result = run_benchmark(request)
    finally:
        windows.removeHandler(handler)
        windows.setLevel(previous)
    wall = time.monotonic() - t0
    row = result.rows[0]
    first, last = (snaps[-4] if len(snaps) >= 4 else snaps[0]), snaps[-1]
    span = last["t"] - first["t"]
    cpu = {k: last["cpu"][k] - first["cpu"][k] for k in last["cpu"]}
    count = {k: last["counters"][k] - first["counters"][k] for k in last["counters"]}
    served = count["success_count"]
    client = cpu["main"] + cpu["workers"]
    srv = cpu["tritonserver"] + cpu["stubs"]
    others = max(cpu["machine"] - client - srv, 0.0)
    out = {
        "model": model, "instances": instances, "protocol": protocol, "workers": workers, "mode": mode,
        "level": level, "throughput": row.throughput, "p50_us": row.percentiles_us[50],
        "p90_us": row.percentiles_us[90],
        "p99_us": row.percentiles_us[99], "avg_us": row.avg_us, "requests": row.requests, "errors": row.errors,
        "stable": row.stable, "windows": len(snaps), "window_s": row.window_s, "server_requests": row.server_requests,
        "server_queue_us": row.server_queue_us, "server_compute_infer_us": row.server_compute_infer_us,
        "server_compute_total_us": (row.server_compute_input_us + row.server_compute_infer_us
                                    + row.server_compute_output_us),
        "server_request_us": row.server_request_us, "call_wall_s": wall,
        # over the CPU span (the last two or three windows)
        "cpu_span_s": span, "cpu_s": cpu, "cpu_span_served": served, "cpu_span_throughput": served / span,
        "avg_batch": count["inference_count"] / count["execution_count"] if count["execution_count"] else None,
        "executing_s": count["execution_ns"] / 1e9,
        "client_cores": client / span, "server_cores": srv / span, "stub_cores": cpu["stubs"] / span,
        "tritonserver_cores": cpu["tritonserver"] / span, "machine_cores": cpu["machine"] / span,
        "other_cores": others / span,
        "main_cores": cpu["main"] / span, "worker_cores": cpu["workers"] / span,
        "client_cpu_us_per_request": client / served * 1e6 if served else None,
        "alone_rps": (os.cpu_count() or 1) * served / (client + srv) if client + srv > 0 else None,
        "server_cpu_us_per_request": srv / served * 1e6 if served else None,
        # the harness's count against Triton's over the measured windows (a worker mode losing records shows here)
        "counted_vs_server": row.requests / row.server_requests if row.server_requests else None,
        "metrics": result.metrics,
    }
    derive(out)
    log(f"  {model} {protocol:<4} w{workers} {mode:<11} {level:>7g}: {row.throughput:8,.0f} req/s  p99 "
        f"{row.percentiles_us[99] / 1e3:7.2f} ms  client {out['client_cores']:.2f} cores  server "
        f"{out['server_cores']:.2f} cores (stub {out['stub_cores']:.2f})  errors {row.errors}  "
        f"{'stable' if row.stable else 'NOT stable'} ({len(snaps)} windows)  counted/Triton "
        f"{out['counted_vs_server'] or 0:.3f}")
    return out


def derive(r: dict[str, Any]) -> dict[str, Any]:
    """The judgements made from a row's measurements (also re-run by ``--report-from``)."""
    # the share of wall time the instances spent executing: Triton's per-execution compute time (batch_stats) over
    # the CPU span, per instance
    r["instance_busy"] = r["executing_s"] / r["cpu_span_s"] / r.get("instances", 1)
    r["limit"] = limit(r)
    return r


def limit(r: dict[str, Any]) -> str:
    """Which side saturates: the generator falling behind, a model instance busy all the time, all cores busy, one
    generator process at a full core (Python runs at most ~1 core per process), else latency."""
    cores = os.cpu_count() or 1
    total = r["client_cores"] + r["server_cores"]
    machine = f"{r['machine_cores']:.2f}/{cores} cores busy"
    per_generator = r["worker_cores"] / r["workers"] if r["workers"] > 1 else r["main_cores"]
    behind = r["counted_vs_server"]
    if r["workers"] == 1 and r["mode"] == "request_rate" and behind and behind < 0.95:
        return (f"generator (Triton answered {1 / behind - 1:.0%} more requests than the generator read in time; "
                f"{machine})")
    if r["instance_busy"] >= 0.85:
        return f"model instances (executing {r['instance_busy']:.0%} of the time; {machine})"
    if r["machine_cores"] >= 0.85 * cores:
        return (f"machine ({machine}: generator {r['client_cores']:.2f}, server {r['server_cores']:.2f}, other "
                f"processes {r['other_cores']:.2f})")
    if per_generator >= 0.85:
        return f"generator ({per_generator:.2f} core per generator process; {machine})"
    return f"latency (cores busy: ours {total:.2f}, all {r['machine_cores']:.2f} of {cores})"


# --- environment -------------------------------------------------------------------------------------------------
def environment(server_version: str) -> dict[str, Any]:
    return machine.environment(server_version, ("onnxruntime", "numpy", "grpcio", "aiohttp", "protobuf"))


# --- report ------------------------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _ms(us: float) -> str:
    return f"{us / 1e3:.2f}"


def _cores(r: dict[str, Any]) -> str:
    return f"{r['client_cores']:.2f} / {r['server_cores']:.2f} ({r['stub_cores']:.2f}) / {r['other_cores']:.2f}"


def _served(r: dict[str, Any]) -> float | None:
    """Requests/s Triton's statistics counted over the same measured windows."""
    return r["server_requests"] / r["window_s"] if r["server_requests"] is not None and r["window_s"] else None


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def combos() -> list[tuple[str, int]]:
    return [(p, w) for p in PROTOCOLS for w in WORKERS]


def closed_table(rows: list[dict[str, Any]]) -> str:
    head = ("| concurrency | protocol | workers | pass | req/s | p50 ms | p99 ms | cores: generator / server (stub) / "
            "other processes | generator CPU µs/req | server CPU µs/req | est. req/s with both cores ours | Triton "
            "compute_infer µs/req | Triton request µs/req | instance busy | stable | what saturates |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["level"], PROTOCOLS.index(r["protocol"]), r["workers"], r["pass"])):
        lines.append(
            f"| {r['level']:g} | {r['protocol']} | {r['workers']} | {r['pass']} | **{_f(r['throughput'])}** | "
            f"{_ms(r['p50_us'])} | {_ms(r['p99_us'])} | {_cores(r)} | {_f(r['client_cpu_us_per_request'])} | "
            f"{_f(r['server_cpu_us_per_request'])} | {_f(r['alone_rps'])} | {_f(r['server_compute_infer_us'])} | "
            f"{_f(r['server_request_us'])} | {r['instance_busy']:.0%} | {'yes' if r['stable'] else 'no'} | "
            f"{r['limit']} |")
    return "\n".join(lines)


def open_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    head = ("| protocol | workers | target req/s | achieved req/s | achieved/target | Triton served req/s | p50 ms | "
            "p99 ms | p50 / lowest p50 | errors | cores: generator / server (stub) / other processes | "
            "what saturates |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (PROTOCOLS.index(r["protocol"]), r["workers"], r["level"])):
        base = summary[f"{r['protocol']}/{r['workers']}"]["lowest_p50_us"]
        mark = "" if r["sustained"] else "**"
        lines.append(
            f"| {r['protocol']} | {r['workers']} | {_f(r['level'])} | {_f(r['throughput'])} | "
            f"{mark}{r['throughput'] / r['level']:.3f}{mark} | {_f(_served(r))} | {_ms(r['p50_us'])} | "
            f"{_ms(r['p99_us'])} | {r['p50_us'] / base:.1f}× | {r['errors']} | {_cores(r)} | {r['limit']} |")
    return "\n".join(lines)


def summary_table(summary: dict[str, Any]) -> str:
    head = ("| protocol | workers | best closed loop req/s, mean of passes (each pass; concurrency) | CPU µs/req "
            "there: generator / server | est. req/s with both cores ours | highest open-loop rate sustained within "
            "5 % | first rate short (achieved) | open-loop p50 ≥ 10× its lowest at |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p, w in combos():
        s = summary[f"{p}/{w}"]
        short = (f"{_f(s['first_short_rate'])} ({_f(s['first_short_achieved'])})" if s["first_short_rate"]
                 else "none up to the highest rate tried")
        lines.append(
            f"| {p} | {w} | **{_f(s['closed_best'])}** ({' / '.join(_f(x) for x in s['closed_best_passes'])}; "
            f"{s['closed_best_concurrency']:g}) | {_f(s['closed_best_client_us'])} / "
            f"{_f(s['closed_best_server_us'])} | "
            f"{_f(s['closed_best_alone_rps'])} | **{_f(s['open_sustained'])}** | {short} | "
            f"{_f(s['exploded_rate']) if s['exploded_rate'] else 'not reached'} |")
    return "\n".join(lines)


def harness_table(rows: list[dict[str, Any]]) -> str:
    head = ("| workers | loop | levels | generator-counted / Triton-counted requests, measured windows: min – median "
            "– max |")
    lines = [head, "|---|---|---|---|"]
    for w in WORKERS:
        for mode in ("concurrency", "request_rate"):
            ratios = [r["counted_vs_server"] for r in rows if r["workers"] == w and r["mode"] == mode
                      and r["counted_vs_server"]]
            if ratios:
                lines.append(f"| {w} | {'closed' if mode == 'concurrency' else 'open'} | {len(ratios)} | "
                             f"{min(ratios):.3f} – {_median(ratios):.3f} – {max(ratios):.3f} |")
    return "\n".join(lines)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p, w in combos():
        mine = [r for r in rows if r["protocol"] == p and r["workers"] == w]
        closed = [r for r in mine if r["mode"] == "concurrency"]
        opened = sorted((r for r in mine if r["mode"] == "request_rate"), key=lambda r: r["level"])
        by_level: dict[float, list[dict[str, Any]]] = {}
        for r in closed:
            by_level.setdefault(r["level"], []).append(r)
        best_level = max(by_level, key=lambda lv: _median([r["throughput"] for r in by_level[lv]])) if by_level else 0
        best = by_level.get(best_level, [])
        sustained = [r["level"] for r in opened if r["sustained"]]
        short = next((r for r in opened if not r["sustained"]), None)
        base = min((r["p50_us"] for r in opened), default=None)
        exploded = next((r["level"] for r in opened if base and r["p50_us"] >= EXPLODED * base), None)
        out[f"{p}/{w}"] = {
            "closed_best": float(np.mean([r["throughput"] for r in best])) if best else None,
            "closed_best_passes": [r["throughput"] for r in sorted(best, key=lambda r: r["pass"])],
            "closed_best_concurrency": best_level,
            "closed_best_client_us": _median([r["client_cpu_us_per_request"] for r in best]) if best else None,
            "closed_best_server_us": _median([r["server_cpu_us_per_request"] for r in best]) if best else None,
            "closed_best_alone_rps": _median([r["alone_rps"] for r in best]) if best else None,
            "open_sustained": max(sustained) if sustained else None,
            "first_short_rate": short["level"] if short else None,
            "first_short_achieved": short["throughput"] if short else None,
            "lowest_p50_us": base, "exploded_rate": exploded,
        }
    return out


def _exploded(s: dict[str, Any]) -> str:
    """ ', though its p50 was already 10× its low-load value at N req/s' when that happened at or below the rate
    reported as sustained."""
    if s["exploded_rate"] and s["open_sustained"] and s["exploded_rate"] <= s["open_sustained"]:
        return (f", though its p50 was already ≥ {EXPLODED:g}× its low-load value from {_f(s['exploded_rate'])} "
                f"req/s on")
    return ""


def interpretation(report: dict[str, Any]) -> str:
    rows, summary = report["rows"], report["summary"]
    cores = report["environment"]["machine"]["cores"]
    closed = [r for r in rows if r["mode"] == "concurrency"]
    g1, h1 = summary["grpc/1"], summary["http/1"]
    passes = g1["closed_best_passes"]
    out = [
        f"- **Ceiling, as measured here.** Against the cheapest model this server runs, the built-in generator with "
        f"its defaults (gRPC, one worker) drove **{_f(g1['closed_best'])} req/s** closed loop (best level, concurrency "
        f"{g1['closed_best_concurrency']:g}; "
        f"{'passes: ' + ' and '.join(_f(x) for x in passes) if len(passes) > 1 else 'one pass'}) and sustained "
        f"**{_f(g1['open_sustained'])} req/s** open loop within 5 %"
        f"{_exploded(g1)}. Over HTTP: {_f(h1['closed_best'])} closed, {_f(h1['open_sustained'])} open"
        f"{_exploded(h1)}. A benchmark of a real model on this machine that reports a throughput in "
        f"that range measures the generator and the shared cores, not the model.",
    ]
    best = [r for r in rows if r["mode"] == "concurrency" and r["protocol"] == "grpc" and r["workers"] == 1
            and r["level"] == g1["closed_best_concurrency"]]
    if best:
        busy = _median([r["instance_busy"] for r in best])
        out.append(f"- **The server side at that point.** The no-op's one instance was executing {busy:.0%} of the "
                   f"time (Triton's compute time per execution, summed, over wall time)" +
                   (": the single Python-backend instance is itself near its limit, so this ceiling is the "
                    "generator's *and* this server's; a cheaper server would not show a much higher one here."
                    if busy >= 0.7 else ", so the server had room: the ceiling is the generator's and the cores'."))
    busy = [r for r in closed if r["level"] >= 16]
    gen = _median([r["client_cpu_us_per_request"] for r in busy if r["client_cpu_us_per_request"]])
    srv = _median([r["server_cpu_us_per_request"] for r in busy if r["server_cpu_us_per_request"]])
    infer = _median([r["server_compute_infer_us"] for r in busy if r["server_compute_infer_us"]])
    alone = _median([r["alone_rps"] for r in busy if r["workers"] == 1 and r["alone_rps"]])
    if busy:
        out.append(
            f"- **Where the CPU goes** (closed loop, concurrency ≥ 16, medians): the generator spent {gen:,.0f} µs of "
            f"CPU per request and the server {srv:,.0f} µs (tritonserver + stub process), of which Triton counts "
            f"{infer:,.0f} µs as compute_infer (the stand-in backend's Python and onnxruntime in the stub, for a "
            f"multiplication by one). The generator is {gen / (gen + srv):.0%} of the CPU one request costs on this "
            f"machine, so with {cores} cores for the two of them alone the ceiling would be about "
            f"{cores} × 10⁶ / (generator + server µs) ≈ {alone:,.0f} req/s (one worker; an estimate from the CPU "
            f"accounting, not a measurement).")
    kinds: dict[str, int] = {}
    for r in closed + [r for r in rows if r["mode"] == "request_rate"]:
        kinds[r["limit"].split(" (")[0]] = kinds.get(r["limit"].split(" (")[0], 0) + 1
    other = _median([r["other_cores"] for r in rows])
    full = kinds.get("machine", 0) > len(rows) / 2
    at_best = []
    for key, v in summary.items():
        level_rows = [r for r in closed if f"{r['protocol']}/{r['workers']}" == key
                      and r["level"] == v["closed_best_concurrency"]]
        if level_rows:
            verdicts = sorted({r["limit"].split(" (")[0] for r in level_rows})
            gen = _median([r["client_cores"] for r in level_rows])
            inst = _median([r["instance_busy"] for r in level_rows])
            at_best.append(f"{key}: {' / '.join(verdicts)} (generator {gen:.2f} cores, instance busy {inst:.0%})")
    text = ("- **Which side saturates.** At each combination's best closed-loop level (protocol/workers): " +
            "; ".join(at_best) + ". Over all levels: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) +
            f". Other processes used a median {other:.2f} of the {cores} cores during the measured windows.")
    if busy:
        text += (f" At concurrency ≥ 16 the generator used a median {_median([r['client_cores'] for r in busy]):.2f} "
                 f"cores (one Python process tops out near 1) and the server "
                 f"{_median([r['server_cores'] for r in busy]):.2f}.")
    g1_rows = [r for r in closed if r["protocol"] == "grpc" and r["workers"] == 1
               and r["level"] == g1["closed_best_concurrency"]]
    if g1_rows and all(r["client_cores"] >= 0.75 and r["instance_busy"] >= 0.75
                       and r["machine_cores"] >= 0.85 * cores for r in g1_rows):
        text += (" At the default configuration's best level the generator process, the one model instance and "
                 "the two cores were all near their limits at once: on this machine no single side is *the* "
                 "bottleneck; a faster generator would meet the server's, and the reverse.")
    if full:
        text += (" Most levels ran on a full machine: the limit is the two cores, shared by generator, server and "
                 "whatever else runs, and the CPU per request above says which of our two sides needs more of them.")
    out.append(text)
    two = [(summary[f"{p}/2"]["closed_best"], summary[f"{p}/1"]["closed_best"], p) for p in PROTOCOLS]
    if all(a and b for a, b, _ in two):
        out.append("- **workers = 2:** " + "; ".join(f"{p}: {a / b:.2f}× one worker's best closed loop"
                                                     for a, b, p in two) +
                   ". A second generator process can only help when one generator process is the limit and a core "
                   "is free" + ("; here the cores were full" if full else "") + ".")
    shorts = [(k, v) for k, v in summary.items() if v["first_short_rate"]]
    if shorts:
        parts = []
        for key, v in shorts:
            r = next(r for r in rows if r["mode"] == "request_rate" and f"{r['protocol']}/{r['workers']}" == key
                     and r["level"] == v["first_short_rate"])
            served = _served(r)
            parts.append(f"{key} at {_f(r['level'])}: generator read {_f(r['throughput'])}, Triton served "
                         f"{_f(served)}" + (" (the server kept up; the generator's count did not)"
                                            if served and served >= (1 - SHORTFALL) * r["level"] else ""))
        less = [k for k, v in summary.items() if v["open_sustained"] and v["closed_best"]
                and v["open_sustained"] < 0.9 * v["closed_best"]]
        out.append("- **Open loop, first rate missed** (protocol/workers): " + "; ".join(parts) + "." + (
            f" Open loop sustained under 90 % of the closed loop's best for {', '.join(less)}: every request is a "
            "new task on a schedule, and past saturation the backlog only grows." if less else ""))
    closed = {w: [r["counted_vs_server"] for r in rows if r["mode"] == "concurrency" and r["counted_vs_server"]
                  and (r["workers"] == 1) == (w == 1)] for w in (1, 2)}
    short = [r for r in rows if r["mode"] == "request_rate" and r["counted_vs_server"]
             and r["counted_vs_server"] < 0.99]
    if closed[1] and closed[2]:
        out.append(
            f"- **Harness check.** Closed loop, the generator counted {min(closed[1]):.3f}–{max(closed[1]):.3f} "
            f"(one worker) and {min(closed[2]):.3f}–{max(closed[2]):.3f} (two worker processes) of the requests "
            "Triton's statistics counted over the same windows."
            + (f" Open loop, {len(short)} of the rates past saturation counted less (down to "
               f"{min(r['counted_vs_server'] for r in short):.3f}): answers Triton already sent wait unread in the "
               "generator's backlog and are dropped when the level ends, so the percentiles of those rows leave out "
               "their latest (slowest) requests; read such rows as 'over capacity', not as latencies." if short
               else ""))
    out.append(
        f"- **Limit of this measurement.** Client and server share the machine's {cores} cores with each other and "
        "with other processes. These are the generator's numbers *on a machine that also runs the server*; a "
        "generator on its own machine, or a server on its own cores, would each go faster. Two passes of the closed "
        "loop, interleaved, give an idea of the run-to-run spread; read differences smaller than that spread as "
        "noise.")
    return "\n".join(out)


def markdown(report: dict[str, Any]) -> str:
    env, method = report["environment"], report["method"]
    m, v = env["machine"], env["versions"]
    load = env["load_average_1_5_15"]
    rows = report["rows"]
    closed = [r for r in rows if r["mode"] == "concurrency"]
    opened = [r for r in rows if r["mode"] == "request_rate"]
    s, so = method["settings"], method["open_settings"]
    return f"""# Built-in load generator capacity

Generated by `benchmarks/loadgen_capacity.py` on {env['date']}{QUICK_NOTE if method['quick'] else ''}.

- Machine: {m['cpu']}, {m['cores']} cores ({m['arch']}), {m['os']}
- Versions: Python {v['python']}, tritonize {v['tritonize']}, tritonclient {v['tritonclient']}, tritonserver \
{v['tritonserver']} (pip, nvidia-pytriton, CPU; ONNX served by tritonize's onnxruntime stand-in backend: onnxruntime \
{v['onnxruntime']} inside Triton's python backend stub process, not Triton's native C++ onnxruntime backend), numpy \
{v['numpy']}, grpcio {v['grpcio']}, aiohttp {v['aiohttp']}, protobuf {v['protobuf']}
- Load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load['start'])}, at end \
{'/'.join(f'{x:.2f}' for x in load['end'])}: other processes shared the machine (their CPU is a column below). \
Run time {report['elapsed_s']:.0f} s.

## Method

- Model: `{MODEL_NAME}` (`y = x * 1.0`, `x` float32 [1]), ONNX, max_batch_size {MAX_BATCH_SIZE}, no dynamic \
batching, one CPU instance, `intra_op_thread_count` 1; batch-1 requests. Built by tritonize's generator, served by \
`LocalTriton` on loopback. The generator, tritonserver and the stub share the machine's cores.
- Engine: `run_benchmark` (`tritonize.client.bench`, engine `builtin`), one call per level. Workers 1: an asyncio \
loop in a thread of this process; workers 2: two spawned processes.
- Closed loop: concurrency {', '.join(str(c) for c in method['concurrency'])} × protocol (gRPC, HTTP) × workers \
(1, 2), {method['passes']} pass(es); within a pass, at each concurrency the four combinations ran back to back, the \
order reversing every level and every pass. Window {s['interval_s']} s, warm-up {s['warmup_s']} s, stability \
±{s['stability']:.0%} over the last three windows, at most {s['max_trials']} windows.
- Open loop (constant arrivals, latency from each request's scheduled time): target rates \
{', '.join(f'{x:g}' for x in method['rates'])} req/s, rising, the combinations interleaved at each rate; a \
combination stops after the first rate whose achieved throughput falls short of the target by more than \
{SHORTFALL:.0%} (or has errors). "p50 ≥ 10× its lowest": the first rate whose p50 is {EXPLODED:g}× the lowest p50 of \
that combination (the median, because the p99 of a shared machine jumps with any stall). Window {so['interval_s']} s, \
warm-up {so['warmup_s']} s, at most {so['max_trials']} windows (past saturation latency grows without bound and never \
is stable).
- CPU: at the end of every measurement window (the harness's log line for it) a snapshot of `/proc/<pid>/stat` \
utime+stime of the generator (this process, all threads, plus its worker processes) and of the server (tritonserver \
and its descendants: the stub process runs the model), of the whole machine (`/proc/stat`: "other processes" \
is the rest), and of Triton's statistics. Cores = CPU seconds / wall seconds and µs/req = CPU seconds / requests \
Triton served, both over the last measured windows (the last three when there were four or more, else the last two; \
never the warm-up). "Est. req/s with both cores ours" = cores × 10⁶ / (generator + server CPU µs/req): what the \
same CPU cost would allow if nothing else ran. "Instance busy" = Triton's compute time per execution summed over \
executions (`batch_stats`) / wall time / instances: the share of wall time the model instances spent executing. \
"What saturates": open loop, one worker, Triton answered ≥ 5 % more requests in the windows than the generator \
read → generator; else instance busy ≥ 85 % → model instances; else ≥ 85 % of all cores busy → machine (whoever uses \
them); else one generator process ≥ 0.85 core → generator; else latency.
- "Triton served req/s": Triton's successful requests over the same measured windows (the harness's \
`server_requests`); with one worker it differs from "achieved" only when the generator falls behind reading answers.
- Triton compute_infer and request µs/req: deltas of Triton's statistics over the measured windows (from the harness).

## Summary

{summary_table(report['summary'])}

## Closed loop

{closed_table(closed)}

## Open loop

{open_table(opened, report['summary']) if opened else '(not run)'}

## Harness check: requests counted by the generator vs by Triton

{harness_table(rows)}

## Interpretation

{interpretation(report)}
"""


# --- main ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test); writes only with --out")
    parser.add_argument("--out", type=Path, help=f"where to write loadgen_capacity.md/.json (default: {RESULTS})")
    parser.add_argument("--report-from", type=Path, metavar="JSON",
                        help="no measurement: rewrite the report from a saved loadgen_capacity.json (its judgements "
                             "recomputed by this version of the script)")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_into:  # the child process that builds the model (keeps torch out of the measuring process)
        build_repository(args.build_into)
        return 0
    out_dir = args.out if args.out else (None if args.quick else RESULTS)
    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        saved["rows"] = [derive(r) for r in saved["rows"]]
        saved["summary"] = summarize(saved["rows"])
        return write(saved, out_dir or args.report_from.parent)

    from tritonize.client import TritonClient
    from tritonize.client.bench.measure import Settings
    from tritonize.deploy.local import LocalTriton, http_json

    if args.quick:  # warm-up 1 s: spawned workers need about that long to send their first request
        settings = open_settings = Settings(interval_s=0.5, warmup_s=1.0, stability=0.5, max_trials=3)
        concurrency, rates, passes = QUICK_CONCURRENCY, QUICK_RATES, 1
    else:
        settings = Settings(interval_s=1.5, warmup_s=1.0, stability=0.10, max_trials=4)
        open_settings = Settings(interval_s=1.5, warmup_s=1.0, stability=0.10, max_trials=3)
        concurrency, rates, passes = CONCURRENCY, RATES, PASSES

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tritonize-bench-") as tmp:
        repo = Path(tmp) / "repo"
        log(f"building {MODEL_NAME} ...")
        subprocess.run([sys.executable, str(THIS), "--build-into", str(repo)], check=True)
        log("starting tritonserver ...")
        with LocalTriton(repo) as server, TritonClient(server.grpc_url) as stats_client:
            server_version = str((http_json(server.http_url, "/v2") or {}).get("version", "unknown"))
            order = combos()
            flip = 0
            for n in range(1, passes + 1):
                log(f"closed loop, pass {n}")
                for level in concurrency:
                    for protocol, workers in (order if flip % 2 == 0 else order[::-1]):
                        row = measure(server, stats_client, MODEL_NAME, protocol, "concurrency", level, workers,
                                      settings, log)
                        row["pass"] = n
                        rows.append(row)
                    flip += 1
                flip += 1  # the next pass starts in the other order
            log("open loop")
            active = list(order)
            for i, rate in enumerate(rates):
                for protocol, workers in (list(active) if i % 2 == 0 else active[::-1]):
                    row = measure(server, stats_client, MODEL_NAME, protocol, "request_rate", rate, workers,
                                  open_settings, log)
                    row["sustained"] = row["throughput"] >= (1 - SHORTFALL) * rate and row["errors"] == 0
                    rows.append(row)
                    if not row["sustained"]:
                        active.remove((protocol, workers))
                if not active:
                    break
    report = {
        "environment": {**environment(server_version),
                        "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()}},
        "method": {"model": MODEL_NAME, "dims": [1], "max_batch_size": MAX_BATCH_SIZE, "instances": 1,
                   "dynamic_batching": False, "intra_op_thread_count": 1, "batch": 1, "passes": passes,
                   "concurrency": list(concurrency), "rates": list(rates), "protocols": list(PROTOCOLS),
                   "workers": list(WORKERS), "settings": dataclasses.asdict(settings),
                   "open_settings": dataclasses.asdict(open_settings), "shortfall": SHORTFALL,
                   "exploded_factor": EXPLODED, "quick": args.quick},
        "rows": rows,
        "elapsed_s": time.monotonic() - started,
    }
    report["summary"] = summarize(rows)
    return write(report, out_dir)


def write(report: dict[str, Any], out_dir: Path | None) -> int:
    text = markdown(report)
    print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "loadgen_capacity.md").write_text(text)
        (out_dir / "loadgen_capacity.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {out_dir / 'loadgen_capacity.md'} and loadgen_capacity.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
