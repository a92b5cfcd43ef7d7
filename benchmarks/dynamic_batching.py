"""Dynamic batching and instance count on CPU: one model served four ways, measured side by side.

    .venv/bin/python benchmarks/dynamic_batching.py            # full run (~6 min on 2 cores): writes results/
    .venv/bin/python benchmarks/dynamic_batching.py --quick    # smoke run: writes nothing unless --out DIR

The model is an MLP (float32 [256] → 3 × Linear(2560) + ReLU → Linear(10); 13.8 M parameters, 55 MB of weights):
at batch 1 onnxruntime streams all weights from memory for one sample, so a batch of 16 costs far less than 16
batches of 1. That is first measured with onnxruntime directly (one thread, the served ``model.onnx``, batch 1 to
32 in interleaved blocks), before the server starts.

The same model is then built four times into ONE repository by tritonize's generator (in a child process, so torch
stays out of the measuring process), max_batch_size 32, ``intra_op_thread_count`` 1 for every variant:

- ``plain_x1`` / ``plain_x2``: no dynamic batching, 1 / 2 CPU instances;
- ``batched_x1`` / ``batched_x2``: dynamic batching (max_queue_delay 1000 µs, no preferred sizes), 1 / 2 instances.

``LocalTriton`` serves it: tritonserver 2.51 from pip, ONNX executed by tritonize's Python-based stand-in backend
(onnxruntime inside Triton's python backend stub, one stub process per instance), not Triton's native backend.
The built-in generator (``run_benchmark``, engine ``builtin``, gRPC, closed loop, batch-1 requests, one worker)
drives concurrency 1, 2, 4, 8, 16, 32, 64; at each level the four variants run one after another, the order
reversing every level (ABBA), so drift and other processes hit them alike. Around each level the CPU of both sides
and Triton's statistics are snapshot at every window end (``loadgen_capacity.measure``): the average executed batch
is Δinference_count / Δexecution_count over the measured windows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

THIS = Path(__file__).resolve()
sys.path.insert(0, str(THIS.parent))
import loadgen_capacity as lc  # noqa: E402  (CPU snapshots, measure(), environment(): shared with that benchmark)

D_IN, LAYERS, HIDDEN, QUICK_HIDDEN, CLASSES = 256, 3, 2560, 256, 10
MAX_BATCH_SIZE = 32
QUEUE_DELAY_US = 1000
VARIANTS = {  # request name -> (dynamic batching, CPU instances)
    "plain_x1": (False, 1), "plain_x2": (False, 2), "batched_x1": (True, 1), "batched_x2": (True, 2)}
LABELS = {"plain_x1": "no batching ×1", "plain_x2": "no batching ×2", "batched_x1": "dyn. batching ×1",
          "batched_x2": "dyn. batching ×2"}
CONCURRENCY = (1, 2, 4, 8, 16, 32, 64)
QUICK_CONCURRENCY = (1, 8)
REPS = 2  # per cell and level, in mirrored order
ORT_BATCHES = (1, 2, 4, 8, 16, 32)
RESULTS = THIS.parent / "results"


def model_name(variant: str) -> str:
    return f"{variant}_onnx"


def build_model(hidden: int = HIDDEN) -> tuple[Any, Any]:
    """The generator's callable source: the MLP (fixed seed) and an example batch (torch only here)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = D_IN
    for _ in range(LAYERS):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers), torch.randn(2, D_IN, generator=torch.Generator().manual_seed(0))


def build_repository(repo: Path, hidden: int) -> None:
    from tritonize.generator.build import build
    from tritonize.generator.config_spec import DynamicBatching, InstanceGroup
    from tritonize.generator.request import FormatOptions, ModelRequest

    options = {"onnx": FormatOptions(parameters={"intra_op_thread_count": "1"})}
    requests = [
        ModelRequest(variant, f"{THIS}:build_model", kwargs={"hidden": hidden}, formats=("onnx",),
                     max_batch_size=MAX_BATCH_SIZE, instance_group=(InstanceGroup("cpu", instances),), version=1,
                     dynamic_batching=(DynamicBatching(max_queue_delay_microseconds=QUEUE_DELAY_US) if batching
                                       else None),
                     format_options=options)
        for variant, (batching, instances) in VARIANTS.items()]
    build(requests, repo)


# --- onnxruntime alone -------------------------------------------------------------------------------------------
def time_onnxruntime(path: Path, blocks: int, runs: int) -> dict[str, Any]:
    """Median time per run of the served model.onnx at each batch size: one thread (as served), warm-up, then
    ``blocks`` blocks of ``runs`` runs per batch size, the order reversing every block."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, D_IN)).astype(np.float32) for b in ORT_BATCHES}
    for b in ORT_BATCHES:
        for _ in range(3):
            session.run(None, {name: inputs[b]})
    times: dict[int, list[float]] = {b: [] for b in ORT_BATCHES}
    for block in range(blocks):
        for b in (ORT_BATCHES if block % 2 == 0 else ORT_BATCHES[::-1]):
            for _ in range(runs):
                t0 = time.perf_counter()
                session.run(None, {name: inputs[b]})
                times[b].append(time.perf_counter() - t0)
    base = float(np.median(times[1]))
    out = {}
    for b in ORT_BATCHES:
        median = float(np.median(times[b]))
        out[str(b)] = {"median_ms": median * 1e3, "p90_ms": float(np.percentile(times[b], 90)) * 1e3,
                       "ms_per_sample": median * 1e3 / b, "vs_batch_1": median / base,
                       "samples_per_s": b / median, "runs": len(times[b])}
    return out


# --- report --------------------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _cell(cells: list[dict[str, Any]], level: int, variant: str) -> dict[str, Any] | None:
    return next((c for c in cells if c["level"] == level and c["variant"] == variant), None)


MEANS = ("throughput", "p50_us", "p99_us", "avg_batch", "server_queue_us", "server_compute_total_us", "client_cores",
         "server_cores", "stub_cores", "other_cores", "machine_cores", "instance_busy")


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell per (level, variant): the mean of its repetitions (ABBA within the level: drift cancels in the
    mean), each repetition's throughput, and requests/s per stub core (throughput / the stubs' CPU cores)."""
    cells = []
    for key in dict.fromkeys((r["level"], r["variant"]) for r in rows):
        reps = [r for r in rows if (r["level"], r["variant"]) == key]
        cell: dict[str, Any] = {"level": key[0], "variant": key[1], "reps": len(reps),
                                "throughput_reps": [r["throughput"] for r in reps],
                                "p99_us_reps": [r["p99_us"] for r in reps]}
        for name in MEANS:
            values = [r[name] for r in reps if r.get(name) is not None]
            cell[name] = float(np.mean(values)) if values else None
        stub_s = sum(r["cpu_s"]["stubs"] for r in reps)
        served = sum(r["cpu_span_served"] for r in reps)
        cell["per_stub_core"] = served / stub_s if stub_s else None
        cells.append(cell)
    return cells


def ort_table(ort: dict[str, Any]) -> str:
    lines = ["| batch | median ms | p90 ms | ms per sample | time vs batch 1 | samples/s (one core) |",
             "|---|---|---|---|---|---|"]
    for b, t in ort.items():
        lines.append(f"| {b} | {t['median_ms']:.2f} | {t['p90_ms']:.2f} | {t['ms_per_sample']:.3f} | "
                     f"{t['vs_batch_1']:.2f}× | {t['samples_per_s']:,.0f} |")
    return "\n".join(lines)


def side_by_side(rows: list[dict[str, Any]], levels: list[int]) -> str:
    """``rows`` here are the aggregated cells."""
    names = list(VARIANTS)
    head = ("| concurrency | " + " | ".join(f"{LABELS[v]} req/s" for v in names) + " | batching gain ×1 | batching "
            "gain ×2 | " + " | ".join(f"{LABELS[v]} p99 ms" for v in names) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for level in levels:
        cells = {v: _cell(rows, level, v) for v in names}
        best = max((c["throughput"] for c in cells.values() if c), default=0)
        tput = [(f"**{_f(c['throughput'])}**" if c["throughput"] == best else _f(c["throughput"])) + _spread(c)
                if c else "–" for c in cells.values()]
        gains = []
        for n in (1, 2):
            p, b = cells[f"plain_x{n}"], cells[f"batched_x{n}"]
            gains.append(f"{b['throughput'] / p['throughput']:.2f}×" if p and b else "–")
        p99 = [_f(c["p99_us"] / 1e3, 2) if c else "–" for c in cells.values()]
        lines.append(f"| {level} | " + " | ".join(tput) + " | " + " | ".join(gains) + " | " + " | ".join(p99) + " |")
    return "\n".join(lines)


def _spread(cell: dict[str, Any]) -> str:
    reps = cell["throughput_reps"]
    return f" ({' / '.join(_f(x) for x in reps)})" if len(reps) > 1 else ""


def efficiency_table(cells: list[dict[str, Any]], levels: list[int]) -> str:
    names = list(VARIANTS)
    head = ("| concurrency | " + " | ".join(f"{LABELS[v]}" for v in names) + " | other processes, cores (mean of "
            "the four) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for level in levels:
        row = [_cell(cells, level, v) for v in names]
        others = [c["other_cores"] for c in row if c and c["other_cores"] is not None]
        lines.append(f"| {level} | " + " | ".join(_f(c["per_stub_core"]) if c else "–" for c in row) +
                     f" | {np.mean(others):.2f} |")
    return "\n".join(lines)


def batch_table(rows: list[dict[str, Any]], levels: list[int]) -> str:
    names = list(VARIANTS)
    head = "| concurrency | " + " | ".join(f"{LABELS[v]}" for v in names) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for level in levels:
        cells = [_cell(rows, level, v) for v in names]
        lines.append(f"| {level} | " + " | ".join(_f(c["avg_batch"], 2) if c else "–" for c in cells) + " |")
    return "\n".join(lines)


def detail_table(rows: list[dict[str, Any]]) -> str:
    head = ("| concurrency | variant | rep | req/s | p50 ms | p99 ms | avg batch | Triton queue µs/req | Triton "
            "compute µs/req | instance busy | cores: generator / server (stubs) / other processes | counted/Triton "
            "| stable (windows) | what saturates |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["level"], list(VARIANTS).index(r["variant"]), r["rep"])):
        lines.append(
            f"| {r['level']} | {LABELS[r['variant']]} | {r['rep']} | {_f(r['throughput'])} | {r['p50_us'] / 1e3:.2f} | "
            f"{r['p99_us'] / 1e3:.2f} | {_f(r['avg_batch'], 2)} | {_f(r['server_queue_us'])} | "
            f"{_f(r['server_compute_total_us'])} | {r['instance_busy']:.0%} | {lc._cores(r)} | "
            f"{_f(r['counted_vs_server'], 3)} | "
            f"{'yes' if r['stable'] else 'no'} ({r['windows']}) | {r['limit']} |")
    return "\n".join(lines)


def generator_ceiling(out_dir: Path | None) -> dict[str, Any] | None:
    """loadgen_capacity's best gRPC one-worker closed-loop throughput, when its results exist."""
    for directory in (out_dir, RESULTS):
        path = directory / "loadgen_capacity.json" if directory else None
        if path and path.is_file():
            with open(path) as f:
                report = json.load(f)
            s = report.get("summary", {}).get("grpc/1", {})
            if s.get("closed_best"):
                return {"path": str(path), "closed_best": s["closed_best"], "open_sustained": s.get("open_sustained"),
                        "quick": report.get("method", {}).get("quick", False), "date": report["environment"]["date"]}
    return None


def interpretation(report: dict[str, Any]) -> str:
    cells, rows, ort = report["cells"], report["rows"], report["onnxruntime"]
    levels = report["method"]["concurrency"]
    out = []
    b1, b16, b32 = ort["1"], ort.get("16"), ort.get("32")
    if b16 and b32:
        out.append(f"- **Batch size, onnxruntime alone** (one thread, this CPU): batch 1 takes "
                   f"{b1['median_ms']:.2f} ms, batch 16 {b16['median_ms']:.2f} ms ({b16['vs_batch_1']:.2f}× the time "
                   f"for 16× the samples); one core runs {b1['samples_per_s']:,.0f} samples/s at batch 1 and "
                   f"{b32['samples_per_s']:,.0f} at batch 32.")
    peak = {v: max((c for c in cells if c["variant"] == v), key=lambda c: c["throughput"]) for v in VARIANTS}
    out.append("- **Peak throughput** (mean of the repetitions; any concurrency): " + "; ".join(
        f"{LABELS[v]} {c['throughput']:,.0f} req/s at {c['level']} (p99 {c['p99_us'] / 1e3:.1f} ms, batch "
        f"{_f(c['avg_batch'], 2)})" for v, c in peak.items()) + ".")
    gains = []
    for n in (1, 2):
        p, b = peak[f"plain_x{n}"], peak[f"batched_x{n}"]
        gains.append(f"{n} instance{'s' if n > 1 else ''}: {b['throughput'] / p['throughput']:.2f}×")
    out.append("- **Dynamic batching's gain** (peak / peak, same instance count): " + ", ".join(gains) + ".")
    high = levels[-1]
    at_high = {v: _cell(cells, high, v) for v in VARIANTS}
    if all(at_high.values()) and all(c["per_stub_core"] for c in at_high.values()):
        eff = {v: c["per_stub_core"] for v, c in at_high.items()}
        out.append(
            f"- **Per CPU second of the model's processes** (requests/s per stub core, which does not depend on how "
            f"much CPU the other processes left us), at concurrency {high}: " + ", ".join(
                f"{LABELS[v]} {x:,.0f}" for v, x in eff.items()) +
            f". Without batching a request costs one batch-1 run (onnxruntime alone: {b1['samples_per_s']:,.0f}/s "
            f"per core) plus the stub's per-execution overhead; with batching that cost is shared by the batch.")
    low = levels[0]
    p1, b1c = _cell(cells, low, "plain_x1"), _cell(cells, low, "batched_x1")
    if p1 and b1c:
        out.append(f"- **At concurrency {low}** there is nothing to batch (average batch {_f(b1c['avg_batch'], 2)}): "
                   f"p50 {p1['p50_us'] / 1e3:.2f} ms without dynamic batching vs {b1c['p50_us'] / 1e3:.2f} ms with "
                   f"it; Triton's queue time per request {_f(p1['server_queue_us'])} vs "
                   f"{_f(b1c['server_queue_us'])} µs: the batcher holds a lone request up to the max_queue_delay "
                   f"({QUEUE_DELAY_US} µs) hoping for company.")
    if all(at_high.values()):
        text = (f"- **At concurrency {high}:** p99 " + ", ".join(
            f"{LABELS[v]} {c['p99_us'] / 1e3:.1f} ms" for v, c in at_high.items()) + ".")
        plain = min(at_high["plain_x1"]["p99_us"], at_high["plain_x2"]["p99_us"])
        batched = max(at_high["batched_x1"]["p99_us"], at_high["batched_x2"]["p99_us"])
        if batched < plain:
            text += (f" In a closed loop every request waits behind the other {high - 1}; with batching one execution "
                     f"serves many of them, so both batched variants' p99 is below both unbatched ones'.")
        out.append(text)
    p1x, p2x = peak["plain_x1"], peak["plain_x2"]
    text = (f"- **Two instances without batching:** {p2x['throughput'] / p1x['throughput']:.2f}× one instance's "
            f"peak; the stubs got {p2x['stub_cores']:.2f} cores there against {p1x['stub_cores']:.2f}. Each instance "
            f"is a stub process running onnxruntime on one thread, so a second instance adds throughput in proportion "
            f"to the CPU it gets, and on 2 cores it competes with the generator, tritonserver and anything else.")
    pairs = [(_cell(cells, lv, "plain_x2"), _cell(cells, lv, "plain_x1")) for lv in levels if lv >= 4]
    ratios = [a["per_stub_core"] / b["per_stub_core"] for a, b in pairs
              if a and b and a["per_stub_core"] and b["per_stub_core"]]
    if ratios:
        text += (f" Per stub core, two instances served {float(np.median(ratios)):.2f}× what one did (median over "
                 f"concurrency ≥ 4, range {min(ratios):.2f}–{max(ratios):.2f})" +
                 (f": a request costs more CPU with two instances running at once (plausibly the two processes "
                  f"competing for memory bandwidth and cache over {report['method']['parameters'] * 4 / 1e6:.0f} MB "
                  f"of weights each; not measured here)." if max(ratios) < 1 else "."))
    out.append(text)
    b1x, b2x = peak["batched_x1"], peak["batched_x2"]
    text = (f"- **Two instances with batching:** {b2x['throughput'] / b1x['throughput']:.2f}× one instance's peak "
            f"(average batch {_f(b2x['avg_batch'], 2)} vs {_f(b1x['avg_batch'], 2)}; requests/s per stub core "
            f"{_f(b2x['per_stub_core'])} vs {_f(b1x['per_stub_core'])}).")
    if b2x["avg_batch"] and b1x["avg_batch"] and b2x["avg_batch"] < b1x["avg_batch"]:
        text += (" The model's one dynamic batcher hands a batch to whichever instance is idle, so with two instances "
                 "batches leave earlier and smaller, and the per-sample saving of large batches shrinks.")
    out.append(text)
    plain = [r["server_compute_total_us"] for r in rows if r["variant"] == "plain_x1" and r["server_compute_total_us"]]
    if plain:
        per = float(np.median(plain)) / 1e3
        out.append(f"- **Inside the server** a batch-1 execution of no batching ×1 took a median {per:.2f} ms of "
                   f"Triton compute time against {b1['median_ms']:.2f} ms for onnxruntime alone: the difference is "
                   f"what the stand-in backend (the python backend's stub process, its IPC with tritonserver, numpy) "
                   f"and the cores shared with the generator and tritonserver add per execution. Triton's native "
                   f"onnxruntime backend, not measured here, would not pay the stub's share.")
    ceiling = report.get("generator_ceiling")
    top = max(cells, key=lambda c: c["throughput"])
    gen = max(r["client_cores"] for r in rows)
    text = (f"- **The generator as a limit.** It used at most {gen:.2f} cores in any level (one worker; a process of "
            f"Python saturates near 1). At the best throughput here, {top['throughput']:,.0f} req/s "
            f"({LABELS[top['variant']]}, concurrency {top['level']}), the model instances were executing "
            f"{top['instance_busy']:.0%} of the time and {top['machine_cores']:.2f} of the 2 cores were busy.")
    if ceiling:
        text += (f" That is {top['throughput'] / ceiling['closed_best']:.0%} of what the generator drove against a "
                 f"no-op model on this machine (gRPC, one worker, closed loop: {ceiling['closed_best']:,.0f} req/s, "
                 f"`{Path(ceiling['path']).name}` of {ceiling['date']}{', quick run' if ceiling['quick'] else ''}).")
    else:
        text += " Run `benchmarks/loadgen_capacity.py` for its ceiling on this machine."
    if gen < 0.85 and top["instance_busy"] >= 0.85:
        text += " The generator had headroom; the model instances (and the cores they share) set the limit."
    elif gen >= 0.85:
        text += " The generator process was near a full core: it may be part of the limit."
    out.append(text)
    others = [r["other_cores"] for r in rows]
    spreads = [abs(reps[0] - reps[1]) / max(reps[:2]) for reps in (c["throughput_reps"] for c in cells)
               if len(reps) > 1 and max(reps[:2]) > 0]
    text = (f"- **Noise.** Other processes used {min(others):.2f}–{max(others):.2f} cores (median "
            f"{float(np.median(others)):.2f}) of the 2 during the measured windows.")
    if spreads:
        text += (f" The two repetitions of a cell (A B C D D C B A within each level) differed by a median "
                 f"{float(np.median(spreads)):.0%} in throughput (max {max(spreads):.0%}); ratios smaller than that "
                 f"are not findings.")
    out.append(text)
    return "\n".join(out)


def markdown(report: dict[str, Any]) -> str:
    env, method = report["environment"], report["method"]
    m, v = env["machine"], env["versions"]
    load = env["load_average_1_5_15"]
    s = method["settings"]
    rows, cells, levels = report["rows"], report["cells"], method["concurrency"]
    return f"""# Dynamic batching × instance count on CPU

Generated by `benchmarks/dynamic_batching.py` on {env['date']}{lc.QUICK_NOTE if method['quick'] else ''}.

- Machine: {m['cpu']}, {m['cores']} cores ({m['arch']}), {m['os']}
- Versions: Python {v['python']}, tritonize {v['tritonize']}, tritonclient {v['tritonclient']}, tritonserver \
{v['tritonserver']} (pip, nvidia-pytriton, CPU; ONNX served by tritonize's onnxruntime stand-in backend: onnxruntime \
{v['onnxruntime']} inside Triton's python backend stub process, not Triton's native C++ onnxruntime backend), numpy \
{v['numpy']}, grpcio {v['grpcio']}, protobuf {v['protobuf']}
- Load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load['start'])}, at end \
{'/'.join(f'{x:.2f}' for x in load['end'])}. Run time {report['elapsed_s']:.0f} s.

## Method

- Model: MLP, float32 [{D_IN}] → {LAYERS} × (Linear({method['hidden']}) + ReLU) → Linear({CLASSES}), \
{method['parameters'] / 1e6:.1f} M parameters; ONNX, max_batch_size {MAX_BATCH_SIZE}, `intra_op_thread_count` 1 \
for every variant; batch-1 requests of random normal data.
- Variants, all four in one repository and one tritonserver: no dynamic batching × 1 and 2 CPU instances; \
dynamic batching (max_queue_delay_microseconds {QUEUE_DELAY_US}, no preferred batch sizes) × 1 and 2 CPU instances.
- onnxruntime alone: the served `model.onnx`, one intra-op and one inter-op thread, {method['ort_blocks']} blocks \
× {method['ort_runs']} runs per batch size, the order reversing every block; before the server started.
- Load: `run_benchmark` (`tritonize.client.bench`, engine `builtin`), gRPC, closed loop, one worker (an asyncio \
loop in a thread of this process; `benchmarks/results/loadgen_capacity.md` measures when that is the limit, and what \
a second worker process adds on this 2-core machine); concurrency \
{', '.join(str(c) for c in levels)}; at each concurrency the four variants ran one after another, \
{'twice, in mirrored order (A B C D D C B A; the tables show the mean of the two), ' if method['reps'] > 1 else ''}\
the order reversing every level. Settings: window {s['interval_s']} s, warm-up {s['warmup_s']} s, stability \
±{s['stability']:.0%} over the last three windows, at most {s['max_trials']} windows (unstable levels report the \
last three).
- Average batch: Δinference_count / Δexecution_count of Triton's statistics, and CPU (generator: this process; \
server: tritonserver and its stub processes, `/proc/<pid>/stat`; other processes: the rest of `/proc/stat`), both \
over the last measured windows (the last \
three when there were four or more, else the last two). Latencies are the generator's (send to answer). \
"Requests/s per stub core" = requests Triton served / CPU seconds of the stub processes over those windows: the \
model's cost per request, whatever share of the cores the other processes left. "Instance busy" = Triton's \
compute time per execution (`batch_stats`) summed / wall time / instances. "What saturates": instance busy ≥ 85 % → \
model instances; else ≥ 85 % of all cores busy → machine; else the generator process ≥ 0.85 core → generator; else \
latency (the same rules as `loadgen_capacity.md`).

## onnxruntime alone, one thread

{ort_table(report['onnxruntime'])}

## Throughput and p99, side by side

"Batching gain" = dynamic batching's throughput / no batching's, same instance count, same concurrency (measured \
back to back). Best throughput of each row in bold{'; in parentheses each repetition' if method['reps'] > 1 else ''}.

{side_by_side(cells, levels)}

## Average executed batch size (Triton's statistics)

{batch_table(cells, levels)}

## Requests/s per stub core

{efficiency_table(cells, levels)}

## Every level in detail

{detail_table(rows)}

## Interpretation

{interpretation(report)}
"""


# --- main ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test); writes only with --out")
    parser.add_argument("--out", type=Path, help=f"where to write dynamic_batching.md/.json (default: {RESULTS})")
    parser.add_argument("--report-from", type=Path, metavar="JSON",
                        help="no measurement: rewrite the report from a saved dynamic_batching.json (its judgements "
                             "recomputed by this version of the script)")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    hidden = args.hidden or (QUICK_HIDDEN if args.quick else HIDDEN)
    if args.build_into:  # the child process that builds the models (keeps torch out of the measuring process)
        build_repository(args.build_into, hidden)
        return 0
    out_dir = args.out if args.out else (None if args.quick else RESULTS)
    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        saved["rows"] = [lc.derive(r) for r in saved["rows"]]
        saved["cells"] = aggregate(saved["rows"])
        return write(saved, out_dir or args.report_from.parent)

    from tritonize.client import TritonClient
    from tritonize.client.bench.measure import Settings
    from tritonize.deploy.local import LocalTriton, http_json

    if args.quick:
        settings = Settings(interval_s=0.5, warmup_s=0.3, stability=0.5, max_trials=3)
        levels, ort_blocks, ort_runs, reps = QUICK_CONCURRENCY, 2, 3, 1
    else:
        settings = Settings(interval_s=1.5, warmup_s=1.0, stability=0.10, max_trials=4)
        levels, ort_blocks, ort_runs, reps = CONCURRENCY, 8, 10, REPS

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tritonize-bench-") as tmp:
        repo = Path(tmp) / "repo"
        log(f"building {', '.join(model_name(v) for v in VARIANTS)} (hidden {hidden}) ...")
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(THIS), "--build-into", str(repo), "--hidden", str(hidden)], check=True)
        build_s = time.monotonic() - t0
        log(f"  built in {build_s:.0f} s; timing onnxruntime alone ...")
        onnx = repo / model_name("plain_x1") / "1" / "model.onnx"
        ort = time_onnxruntime(onnx, ort_blocks, ort_runs)
        for b, t in ort.items():
            log(f"  batch {b:>2}: {t['median_ms']:.2f} ms ({t['vs_batch_1']:.2f}× batch 1)")
        parameters = D_IN * hidden + hidden + (LAYERS - 1) * (hidden * hidden + hidden) + hidden * CLASSES + CLASSES
        log("starting tritonserver ...")
        with LocalTriton(repo) as server, TritonClient(server.grpc_url) as stats_client:
            server_version = str((http_json(server.http_url, "/v2") or {}).get("version", "unknown"))
            order = list(VARIANTS)
            for i, level in enumerate(levels):
                first = order if i % 2 == 0 else order[::-1]
                for rep in range(1, reps + 1):
                    for variant in (first if rep % 2 == 1 else first[::-1]):
                        batching, instances = VARIANTS[variant]
                        row = lc.measure(server, stats_client, model_name(variant), "grpc", "concurrency", level, 1,
                                         settings, log, instances=instances)
                        row.update(variant=variant, dynamic_batching=batching, level=level, rep=rep)
                        rows.append(row)
    env = lc.environment(server_version)
    report = {
        "environment": {**env, "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()}},
        "method": {"models": {model_name(v): {"dynamic_batching": b, "instances": n} for v, (b, n) in VARIANTS.items()},
                   "hidden": hidden, "layers": LAYERS, "d_in": D_IN, "parameters": parameters,
                   "max_batch_size": MAX_BATCH_SIZE, "max_queue_delay_us": QUEUE_DELAY_US,
                   "intra_op_thread_count": 1, "protocol": "grpc", "workers": 1, "batch": 1,
                   "concurrency": list(levels), "settings": dataclasses.asdict(settings), "ort_blocks": ort_blocks,
                   "ort_runs": ort_runs, "reps": reps, "build_s": build_s, "quick": args.quick},
        "onnxruntime": ort,
        "cells": aggregate(rows),
        "rows": rows,
        "generator_ceiling": generator_ceiling(out_dir),
        "elapsed_s": time.monotonic() - started,
    }
    return write(report, out_dir)


def write(report: dict[str, Any], out_dir: Path | None) -> int:
    text = markdown(report)
    print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "dynamic_batching.md").write_text(text)
        (out_dir / "dynamic_batching.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {out_dir / 'dynamic_batching.md'} and dynamic_batching.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
