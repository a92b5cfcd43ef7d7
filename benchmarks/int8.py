"""FP32 vs dynamic INT8 vs static INT8 on onnxruntime (this CPU), built by tritonize's own pipeline.

    .venv/bin/python benchmarks/int8.py            # full run (~10-15 min on 2 cores): writes benchmarks/results/int8.*
    .venv/bin/python benchmarks/int8.py --quick    # smoke run (tiny, barely trained models): writes only with --out DIR

Three models: the digits CNN and the token-sequence classifier of ``tritonize.generator.examples``, and the same
``SequenceClassifier`` at a realistic width (d_model 256, 4 heads, 4 layers, ff 1024). A child process trains each
model once (timed), saves its weights, and builds it with ``tritonize.generator.build.build`` into a temporary
repository: ``onnx`` + ``onnx-int8`` with ``Quantization("dynamic")``, then ``onnx-int8`` with the other
``VARIANTS`` (static by minmax|entropy|percentile, and onnxruntime's own op sets) under other request
names, each its own ``build()`` so one failing variant leaves the others. Every request loads the same saved
weights (source: ``pretrained`` below), so all variants of a model share one FP32 parent. The pipeline's
``OptimizationReport`` (accuracy against the eager model, its own quick latency) is kept as it is.

This process then times the written ``<repo>/<model>/1/model.onnx`` files with onnxruntime directly: one session per
file with identical options, per cell (model × input × batch) a warm-up, then blocks in which every variant runs the
same inputs, the order reversing every block (ABBA) so drift and other processes hit all variants alike. It also
measures accuracy and agreement of each file on the held-out set, counts the quantized nodes in each graph (as
written and after onnxruntime's graph optimizations) and profiles the batch-32 runs per operator type.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
THIS = Path(__file__).resolve()
TARGET_SPEEDUP = 1.5
TARGET_DROP = 1.0
TRAIN_SIZE, TRAIN_SEED = 2000, 0  # build_sequence_classifier's training set: make_task(2000, seed 0)
LONG = 128  # a realistic request length (SequenceClassifier's position table covers MAX_LEN = 256 tokens)
EVAL_SEED_LONG = 2027  # held out like the examples' evaluation set (seed 2026), at LONG tokens
BATCHES = (1, 32)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8", "amx_bf16")
FP32_GEMM = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "Conv", "FusedConv"}
INT8_GEMM = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm",
             "QLinearConv", "ConvInteger", "QAttention", "MatMulNBits"}
QUANTIZE = {"DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"}
COUNTED = ("MatMul", "Gemm", "FusedMatMul", "Conv", "FusedConv", *sorted(INT8_GEMM - {"MatMulNBits"}),
           "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class ModelSpec:
    key: str  # request-name prefix; results are keyed by it
    title: str
    example: str  # digits | sequence
    max_batch_size: int
    epochs: int
    sizes: dict[str, int] = field(default_factory=dict)  # SequenceClassifier(d_model, heads, layers, ff)
    lr: float | None = None  # None: the example's own builder trains it; else our loop on its task with this lr
    settings: tuple[str, ...] = ("natural", "long")  # inputs timed: images | natural (6-24 tokens) | long (LONG)


def model_specs(quick: bool) -> list[ModelSpec]:
    if quick:
        return [ModelSpec("digits", "digits CNN (1 epoch)", "digits", 64, 1, settings=("images",)),
                ModelSpec("sequence", "sequence d64×2 (1 epoch)", "sequence", 32, 1),
                ModelSpec("encoder", "encoder d128×2 ff512 (untrained)", "sequence", 32, 0,
                          {"d_model": 128, "heads": 4, "layers": 2, "ff": 512}, lr=5e-4)]
    return [ModelSpec("digits", "digits CNN", "digits", 64, 8, settings=("images",)),
            ModelSpec("sequence", "sequence classifier d64×2", "sequence", 32, 6),
            ModelSpec("encoder", "encoder d256×4 ff1024", "sequence", 32, 3,
                      {"d_model": 256, "heads": 4, "layers": 4, "ff": 1024}, lr=5e-4)]


REFERENCE = "fp32-pre"  # not a pipeline artifact: the FP32 file after quant_pre_process, what INT8 starts from


def _onnxruntime_ops(*names: str) -> tuple[str, ...]:
    """The op types of onnxruntime's quantizer registries: what it quantizes when given no op list
    (``quantize_dynamic``: IntegerOpsRegistry; ``quantize_static``: QLinearOpsRegistry + QDQRegistry)."""
    from onnxruntime.quantization import registry

    return tuple(sorted({op for name in names for op in getattr(registry, name)}))


# The pipeline's Quantization per variant. "dynamic" also carries the FP32 parent (``fp32``). Beside tritonize's
# defaults (dynamic: MatMul/Gemm; static: the ops with a QDQ rule), what onnxruntime quantizes when given no op
# list ("-ort-default") and static Q/DQ around the GEMMs and Conv only ("static-gemm"): the choices the defaults
# were made from.
VARIANTS: dict[str, dict[str, Any]] = {
    "dynamic": {"method": "dynamic"},
    "dynamic-ort-default": {"method": "dynamic", "op_types": _onnxruntime_ops("IntegerOpsRegistry")},
    "static-minmax": {"method": "static", "calibration": "minmax"},
    "static-entropy": {"method": "static", "calibration": "entropy"},
    "static-percentile": {"method": "static", "calibration": "percentile"},
    "static-gemm": {"method": "static", "calibration": "minmax", "op_types": ("Conv", "Gemm", "MatMul")},
    "static-ort-default": {"method": "static", "calibration": "minmax",
                           "op_types": _onnxruntime_ops("QLinearOpsRegistry", "QDQRegistry")},
}
QUICK_VARIANTS = ["dynamic", "static-minmax"]


def model_dir(key: str, variant: str) -> str:
    """The repository folder of ``variant``: FP32 comes with the dynamic request (``<key>_dynamic_onnx``)."""
    if variant == "fp32":
        return f"{key}_dynamic_onnx"
    return f"{key}_{variant.replace('-', '_')}_onnx_int8"


# --- the child process: train, save data, build with the pipeline ----------------------------------------------
def pretrained(example: str, weights: str, **sizes: int) -> Any:
    """The build's source callable: the example's ModelBundle (held-out set, calibration data, labels) with the
    weights trained once by this benchmark, so every request of a model has the same FP32 parent."""
    import torch

    if example == "digits":
        from tritonize.generator.examples.digits import build_digits_cnn

        bundle = build_digits_cnn(epochs=0)
    else:
        from tritonize.generator.examples.sequence import build_sequence_classifier

        bundle = build_sequence_classifier(epochs=0, **sizes)
    bundle.model.load_state_dict(torch.load(weights))
    bundle.model.eval()
    return bundle


def train(spec: ModelSpec) -> Any:
    from tritonize.generator.examples._training import deterministic, train_classifier
    from tritonize.generator.examples.digits import build_digits_cnn
    from tritonize.generator.examples.sequence import build_sequence_classifier, make_task

    if spec.example == "digits":
        return build_digits_cnn(epochs=spec.epochs)
    if spec.lr is None:
        return build_sequence_classifier(epochs=spec.epochs, **spec.sizes)
    import torch

    bundle = build_sequence_classifier(epochs=0, **spec.sizes)  # initialised exactly as the builder does
    if spec.epochs:
        ids, mask, labels = make_task(TRAIN_SIZE, TRAIN_SEED)
        with deterministic(TRAIN_SEED) as gen:
            train_classifier(bundle.model, (torch.from_numpy(ids), torch.from_numpy(mask)), torch.from_numpy(labels),
                             epochs=spec.epochs, batch_size=64, lr=spec.lr, generator=gen)
    return bundle


def eval_sets(spec: ModelSpec, bundle: Any) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Per input setting: (inputs, labels). ``natural`` and ``images`` are the pipeline's own evaluation set."""
    inputs, labels = bundle.evaluation()
    sets = {spec.settings[0]: ({k: np.asarray(v) for k, v in inputs.items()}, np.asarray(labels))}
    if "long" in spec.settings:
        from tritonize.generator.examples.sequence import make_task

        ids, mask, long_labels = make_task(500, EVAL_SEED_LONG, min_len=LONG, max_len=LONG)
        sets["long"] = ({"ids": ids, "mask": mask}, long_labels)
    return sets


def eager_accuracy(model: Any, inputs: dict[str, np.ndarray], labels: np.ndarray, chunk: int) -> float:
    import torch

    names = list(inputs)
    preds = []
    with torch.inference_mode():
        for start in range(0, len(labels), chunk):
            preds.append(model(*(torch.from_numpy(inputs[n][start : start + chunk]) for n in names)).argmax(-1))
    return float((torch.cat(preds).numpy() == labels).mean())


def prepare(work: Path, quick: bool, built_variants: list[str]) -> None:
    """Child process: train every model once, save its weights and evaluation data, build every variant."""
    import torch

    from tritonize.generator.build import build
    from tritonize.generator.manifest import environment
    from tritonize.generator.quantization import Quantization
    from tritonize.generator.request import FormatOptions, ModelRequest

    repo, summary = work / "repo", {"models": {}, "environment": environment(),
                                    "torch_threads": torch.get_num_threads()}
    for spec in model_specs(quick):
        print(f"[{spec.key}] training {spec.title} ...", file=sys.stderr)
        t0 = time.perf_counter()
        bundle = train(spec)
        train_s = time.perf_counter() - t0
        weights = work / f"{spec.key}.pt"
        torch.save(bundle.model.state_dict(), weights)
        sets = eval_sets(spec, bundle)
        arrays = {f"{s}__{k}": v for s, (inputs, labels) in sets.items()
                  for k, v in {**inputs, "labels": labels}.items()}
        np.savez(work / f"{spec.key}.npz", **arrays)
        record: dict[str, Any] = {
            "spec": asdict(spec), "train_s": train_s,
            "params": sum(p.numel() for p in bundle.model.parameters()),
            "eager_accuracy": {s: eager_accuracy(bundle.model, i, lab, spec.max_batch_size)
                               for s, (i, lab) in sets.items()},
            "builds": {},
        }
        print(f"[{spec.key}] trained in {train_s:.1f} s; eager accuracy {record['eager_accuracy']}", file=sys.stderr)
        kwargs = {"example": spec.example, "weights": str(weights), **spec.sizes}
        for variant in built_variants:
            q = Quantization(**{"per_channel": False, **VARIANTS[variant]})  # per-tensor, as results/int8.md records
            # budget 100 points: the benchmark records the drop instead of failing the build at 1 point
            opts = FormatOptions(quantization=q, accuracy_budget=100.0)
            request = ModelRequest(model_dir(spec.key, variant).removesuffix("_onnx_int8"), f"{THIS}:pretrained",
                                   kwargs=kwargs,
                                   formats=("onnx", "onnx-int8") if variant == "dynamic" else ("onnx-int8",),
                                   max_batch_size=spec.max_batch_size, version=1,
                                   format_options={"onnx-int8": opts})
            t0 = time.perf_counter()
            try:
                built = build([request], repo)
            except Exception as exc:  # recorded, the other variants still run
                record["builds"][variant] = {"error": f"{type(exc).__name__}: {exc}",
                                             "build_s": time.perf_counter() - t0}
                print(f"[{spec.key}] {variant} failed: {exc}", file=sys.stderr)
                continue
            result = next(b for b in built if b.format == "onnx-int8")
            record["builds"][variant] = {"build_s": time.perf_counter() - t0, "model": result.name,
                                         "report": result.optimization.as_dict() if result.optimization else None}
            print(f"[{spec.key}] {variant} built in {record['builds'][variant]['build_s']:.1f} s", file=sys.stderr)
        summary["models"][spec.key] = record
    (work / "build.json").write_text(json.dumps(summary, indent=1, default=float))


# --- measuring (onnxruntime only) ------------------------------------------------------------------------------
def session_options(threads: int, profile_prefix: str | None = None, optimized: str | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized:
        options.optimized_model_filepath = optimized
    return options


def open_session(path: Path, threads: int, **kwargs: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads, **kwargs), providers=["CPUExecutionProvider"])


def load_sets(path: Path) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    sets: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    with np.load(path) as data:
        for key in data.files:
            setting, name = key.split("__", 1)
            inputs, _ = sets.setdefault(setting, ({}, np.empty(0)))
            if name == "labels":
                sets[setting] = (inputs, data[key])
            else:
                inputs[name] = data[key]
    return sets


def feeds(inputs: dict[str, np.ndarray], batch: int, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` distinct batches of held-out inputs; sequences trimmed to the longest in the batch (as a client
    would send them: padding only within a batch)."""
    total = len(next(iter(inputs.values())))
    rows = np.random.default_rng(batch).permutation(total)
    out = []
    for i in range(count):
        idx = np.sort(rows[(i * batch) % total :][:batch])
        if len(idx) < batch:
            idx = np.sort(rows[:batch])
        chunk = {k: v[idx] for k, v in inputs.items()}
        if "mask" in chunk:
            width = int(chunk["mask"].sum(1).max())
            chunk = {k: v[:, :width] for k, v in chunk.items()}
        out.append({k: np.ascontiguousarray(v) for k, v in chunk.items()})
    return out


def time_calls(session: Any, batches: list[dict[str, np.ndarray]], n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    run, clock = session.run, time.perf_counter_ns
    for i in range(n):
        feed = batches[i % len(batches)]
        t0 = clock()
        run(None, feed)
        out[i] = clock() - t0
    return out


def cpu_counters() -> tuple[float, float, float]:
    """(machine busy jiffies, steal jiffies, this process's CPU seconds) now; busy/steal 0 without /proc/stat."""
    busy = steal = 0.0
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]  # user nice system irq softirq
        steal = fields[7] if len(fields) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return busy, steal, t.user + t.system


def measure_cell(sessions: dict[str, Any], batches: list[dict[str, np.ndarray]], batch: int, blocks: int,
                 block_s: float, min_calls: int, max_calls: int, warmup: int) -> dict[str, Any]:
    """Interleaved blocks, ABBA order; every variant runs the same inputs in the same order in every block."""
    keys = list(sessions)
    estimate = 0.0
    for key in keys:
        time_calls(sessions[key], batches, warmup)
        estimate = max(estimate, float(np.median(time_calls(sessions[key], batches, max(3, len(batches))))) / 1e9)
    calls = int(min(max_calls, max(min_calls, round(block_s / max(estimate, 1e-6)))))
    samples: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    load, before, t0 = os.getloadavg(), cpu_counters(), time.perf_counter()
    for b in range(blocks):
        for key in keys if b % 2 == 0 else keys[::-1]:
            gc.collect()
            samples[key].append(time_calls(sessions[key], batches, calls))
    wall, after = time.perf_counter() - t0, cpu_counters()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy, steal, own = ((a - b) for a, b in zip(after, before))
    result: dict[str, Any] = {"calls_per_block": calls, "blocks": blocks, "load_average_1min": load[0],
                              "wall_s": wall, "own_cpu_cores": own / wall,
                              "others_cpu_cores": max(busy / hz - own, 0.0) / wall, "steal_cores": steal / hz / wall,
                              "variants": {}}
    base_blocks = [np.median(b) for b in samples[keys[0]]]
    for key in keys:
        all_ns = np.concatenate(samples[key])
        block_ratio = np.array(base_blocks) / np.array([np.median(b) for b in samples[key]])
        result["variants"][key] = {
            "n": int(all_ns.size), "median_ms": float(np.median(all_ns) / 1e6),
            "p90_ms": float(np.percentile(all_ns, 90) / 1e6), "mean_ms": float(all_ns.mean() / 1e6),
            "min_ms": float(all_ns.min() / 1e6), "throughput_sps": batch * all_ns.size / (all_ns.sum() / 1e9),
            "block_speedup_median": float(np.median(block_ratio)),
            "block_speedup_iqr": [float(np.percentile(block_ratio, 25)), float(np.percentile(block_ratio, 75))],
        }
    base = result["variants"][keys[0]]["median_ms"]
    for key in keys:
        result["variants"][key]["speedup"] = base / result["variants"][key]["median_ms"]
    return result


def accuracy(session: Any, inputs: dict[str, np.ndarray], labels: np.ndarray, chunk: int) -> np.ndarray:
    """Logits over the whole set, ``chunk`` samples a run (the padded width of the set, as the pipeline does)."""
    total = len(labels)
    return np.concatenate([session.run(None, {k: v[s : s + chunk] for k, v in inputs.items()})[0]
                           for s in range(0, total, chunk)])


def graph_ops(path: Path, threads: int, work: Path) -> dict[str, Any]:
    """Op-type counts as written, and after onnxruntime's ORT_ENABLE_ALL optimizations (what actually runs)."""
    import onnx

    optimized = work / f"optimized-{path.parent.parent.name}.onnx"
    open_session(path, threads, optimized=str(optimized))
    written = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    model = onnx.load(str(optimized))
    running = Counter(n.op_type for n in model.graph.node)
    initializers = {i.name for i in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}

    def constant(name: str) -> bool:  # an initializer, or an initializer dequantized at run time
        node = producer.get(name)
        return name in initializers or (node is not None and node.op_type == "DequantizeLinear"
                                        and node.input[0] in initializers)

    weight_nodes = {n.name for n in model.graph.node if any(constant(x) for x in n.input[:2])}
    fp32_gemms = [n for n in model.graph.node if n.op_type in FP32_GEMM]
    return {"written": dict(written), "running": dict(running), "weight_nodes": sorted(weight_nodes),
            "fp32_weight_gemms_running": sum(n.name in weight_nodes for n in fp32_gemms),
            "fp32_weight_gemms_on_dequantized_weights": sum(
                n.name in weight_nodes and not any(x in initializers for x in n.input[:2]) for n in fp32_gemms),
            "fp32_activation_matmuls_running": sum(n.name not in weight_nodes for n in fp32_gemms)}


def profile(path: Path, batches: list[dict[str, np.ndarray]], threads: int, warm: int, runs: int,
            weight_nodes: Iterable[str], work: Path) -> dict[str, Any]:
    """Per op type, mean ms per run (onnxruntime's profiler, warm-up runs left out); FP32 GEMMs split into those
    with a constant weight (what quantization targets) and activation×activation ones (attention)."""
    prefix = work / f"profile-{path.parent.parent.name}"
    session = open_session(path, threads, profile_prefix=str(prefix))
    for i in range(warm + runs):
        session.run(None, batches[i % len(batches)])
    events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    cutoff = model_runs[warm - 1]["ts"] + model_runs[warm - 1]["dur"] if warm else 0
    measured = [e for e in model_runs if e["ts"] >= cutoff]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= cutoff]
    weights = set(weight_nodes)
    by_op: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    for e in nodes:
        op, name = e["args"].get("op_name", "?"), e["name"][: -len("_kernel_time")]
        by_op[op] += e["dur"]
        if op in FP32_GEMM:
            groups["fp32 gemm (weights)" if name in weights else "fp32 matmul (activations)"] += e["dur"]
        elif op in INT8_GEMM:
            groups["int8 gemm"] += e["dur"]
        elif op in QUANTIZE:
            groups["(de)quantize"] += e["dur"]
        else:
            groups["other"] += e["dur"]
    n = max(len(measured), 1)
    return {"runs": len(measured), "run_ms": sum(e["dur"] for e in measured) / n / 1e3,
            "node_ms": sum(by_op.values()) / n / 1e3,
            "by_op_ms": {k: v / n / 1e3 for k, v in by_op.most_common()},
            "groups_ms": {k: v / n / 1e3 for k, v in groups.most_common()}}


# --- environment ---------------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def environment(build_env: dict[str, str]) -> dict[str, Any]:
    import onnxruntime as ort

    from tritonize.client.bench.report import machine

    os_name = machine()["os"]
    versions = {"python": platform.python_version(), **{k: v for k, v in build_env.items() if k != "python"}}
    for dist in ("onnxruntime", "onnx", "numpy"):
        versions[dist] = importlib.metadata.version(dist)
    return {"cpu": cpu_info(), "os": os_name, "machine": platform.machine(), "versions": versions,
            "onnxruntime_providers": ort.get_available_providers(), "onnxruntime_device": ort.get_device()}


# --- formatting ----------------------------------------------------------------------------------------------
SETTING_LABEL = {"images": "8×8 images", "natural": "6–24 tokens", "long": f"{LONG} tokens"}


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _acc(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def main_table(report: dict[str, Any]) -> str:
    head = ("| model | input | batch | variant | median ms | p90 ms | samples/s | **speedup** | per-block speedup "
            "[IQR] | size MB (ratio) | accuracy | drop pt | agree |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, model in report["models"].items():
        for setting, cells in model["cells"].items():
            for batch, cell in cells.items():
                for variant, v in cell["variants"].items():
                    acc = model["accuracy"][setting].get(variant, {})
                    size = model["files"][variant]
                    speed = "—" if variant == "fp32" else f"**{v['speedup']:.2f}×**"
                    iqr = "—" if variant == "fp32" else (f"{v['block_speedup_median']:.2f} "
                                                         f"[{v['block_speedup_iqr'][0]:.2f}–"
                                                         f"{v['block_speedup_iqr'][1]:.2f}]")
                    drop = "—" if variant == "fp32" else f"{acc.get('drop_points', 0):+.2f}"
                    agree = "—" if variant == "fp32" else f"{acc.get('agreement', 0):.1%}"
                    lines.append(f"| {key} | {SETTING_LABEL[setting]} | {batch} | {variant} | {_ms(v['median_ms'])} | "
                                 f"{_ms(v['p90_ms'])} | {v['throughput_sps']:,.0f} | {speed} | {iqr} | "
                                 f"{size['bytes'] / 1e6:.2f} ({size['ratio']:.2f}×) | {_acc(acc.get('accuracy'))} | "
                                 f"{drop} | {agree} |")
    return "\n".join(lines)


def load_table(report: dict[str, Any]) -> str:
    lines = ["| model | input | batch | calls × blocks per variant | cell wall s | load avg (1 min) | this process, "
             "cores | other processes, cores | steal, cores |", "|---|---|---|---|---|---|---|---|---|"]
    for key, model in report["models"].items():
        for setting, cells in model["cells"].items():
            for batch, c in cells.items():
                lines.append(f"| {key} | {SETTING_LABEL[setting]} | {batch} | {c['calls_per_block']} × {c['blocks']} | "
                             f"{c.get('wall_s', 0):.1f} | {c['load_average_1min']:.2f} | "
                             f"{c.get('own_cpu_cores', 0):.2f} | {c.get('others_cpu_cores', 0):.2f} | "
                             f"{c.get('steal_cores', 0):.2f} |")
    return "\n".join(lines)


def models_table(report: dict[str, Any]) -> str:
    lines = ["| model | what | parameters | training | eager accuracy (held-out) | max batch |",
             "|---|---|---|---|---|---|"]
    for key, model in report["models"].items():
        spec = model["spec"]
        how = ("untrained" if not spec["epochs"] else f"{spec['epochs']} epochs, the example's builder"
               if spec["lr"] is None else f"{spec['epochs']} epochs, Adam lr {spec['lr']:g} on the builder's task")
        accs = ", ".join(f"{_acc(a)} ({SETTING_LABEL[s]})" for s, a in model["eager_accuracy"].items())
        lines.append(f"| {key} | {spec['title']} | {model['params']:,} | {how}: {model['train_s']:.0f} s | {accs} | "
                     f"{spec['max_batch_size']} |")
    return "\n".join(lines)


def pipeline_table(report: dict[str, Any]) -> str:
    lines = ["| model | variant | build s | technique | acc FP32 eager | acc INT8 | drop pt | agree | max abs Δ | "
             "pipeline speedup b1 / bmax | size (gzip, pruned) | passes 1-pt gate |", "|" + "---|" * 12]
    for key, model in report["models"].items():
        for variant, b in model["builds"].items():
            if "error" in b:
                lines.append(f"| {key} | {variant} | {b['build_s']:.0f} | **failed**: {b['error'][:160]} |" + " |" * 8)
                continue
            r = b["report"]
            speed = " / ".join(f"{r['speedup'][k]:.2f}×" for k in sorted(r["speedup"], key=int))
            gate = "yes" if (r["accuracy_drop_points"] or 0) <= TARGET_DROP else "**no**"
            zipped = r.get("gzip_size_ratio")  # measured for pruned models only
            size = f"{r['size_ratio']:.2f}×" + ("" if zipped is None else f" ({zipped:.2f}×)")
            lines.append(f"| {key} | {variant} | {b['build_s']:.0f} | {r['technique']} | {_acc(r['accuracy_fp32'])} | "
                         f"{_acc(r['accuracy'])} | {r['accuracy_drop_points']:+.2f} | {r['agreement']:.1%} | "
                         f"{r['max_abs_diff']:.2g} | {speed} | {size} | {gate} |")
    return "\n".join(lines)


def graph_table(report: dict[str, Any]) -> str:
    lines = ["| model | variant | nodes as written (quantization-related) | kernels after ORT_ENABLE_ALL |",
             "|---|---|---|---|"]

    def fmt(counts: dict[str, int]) -> str:
        return ", ".join(f"{op} {counts[op]}" for op in COUNTED if counts.get(op)) or "—"

    for key, model in report["models"].items():
        for variant, g in model["graphs"].items():
            lines.append(f"| {key} | {variant} | {fmt(g['written'])} | {fmt(g['running'])} |")
    return "\n".join(lines)


def profile_table(report: dict[str, Any]) -> str:
    groups = ("fp32 gemm (weights)", "fp32 matmul (activations)", "int8 gemm", "(de)quantize", "other")
    lines = ["| model | input | variant | run ms | " + " | ".join(groups) + " | top kernels (ms/run) |",
             "|" + "---|" * (len(groups) + 5)]
    for key, model in report["models"].items():
        for setting, by_variant in model["profiles"].items():
            for variant, p in by_variant.items():
                total = p["node_ms"] or 1.0
                cells = [f"{p['groups_ms'].get(g, 0):.2f} ({p['groups_ms'].get(g, 0) / total:.0%})" for g in groups]
                top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(p["by_op_ms"].items())[:4])
                lines.append(f"| {key} | {SETTING_LABEL[setting]} | {variant} | {p['run_ms']:.2f} | "
                             + " | ".join(cells) + f" | {top} |")
    return "\n".join(lines)


def amdahl(report: dict[str, Any], key: str, setting: str) -> dict[str, float] | None:
    """From the batch-32 profiles: the share f of FP32 kernel time in weight GEMMs, the speedup s dynamic INT8
    achieves on that part (its INT8 GEMMs + activation quantization), the bound 1/(1-f) with free GEMMs and the s
    the target needs; against the pre-processed FP32 graph (same fusions as the INT8 one) and the shipped one."""
    profiles = report["models"].get(key, {}).get("profiles", {}).get(setting, {})
    if not {"fp32", REFERENCE, "dynamic"} <= set(profiles):
        return None
    dyn = profiles["dynamic"]
    int8 = dyn["groups_ms"].get("int8 gemm", 0.0) + dyn["groups_ms"].get("(de)quantize", 0.0)
    out: dict[str, float] = {"gemm_int8_ms": int8, "rest_dynamic_ms": dyn["node_ms"] - int8,
                             "node_ms_dynamic": dyn["node_ms"]}
    for name, tag in (("fp32", "fp32"), (REFERENCE, "pre")):
        base = profiles[name]
        gemm = base["groups_ms"].get("fp32 gemm (weights)", 0.0)
        f = gemm / (base["node_ms"] or 1.0)
        need = 1 / TARGET_SPEEDUP - (1 - f)
        out.update({f"share_{tag}": f, f"gemm_{tag}_ms": gemm, f"rest_{tag}_ms": base["node_ms"] - gemm,
                    f"node_ms_{tag}": base["node_ms"], f"gemm_speedup_{tag}": gemm / int8 if int8 else 0.0,
                    f"bound_{tag}": 1 / (1 - f) if f < 1 else float("inf"),
                    f"needed_gemm_speedup_{tag}": f / need if need > 0 else float("inf")})
    return out


def interpretation(report: dict[str, Any]) -> str:
    out: list[str] = []
    enc = report["models"].get("encoder")
    flags = report["environment"]["cpu"]["flags"]
    isa = ", ".join(f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if flags.get(f)) or "none of VNNI/AMX"
    out.append(f"**Target**: dynamic INT8 ≥ {TARGET_SPEEDUP}× faster than FP32 on the transformer encoder at batch 32 "
               f"with ≤ {TARGET_DROP:g} point accuracy drop. This CPU's INT8 instructions: {isa}.")
    if enc is None or not enc["cells"]:
        return "\n".join(out)
    verdicts: dict[str, bool] = {}
    for setting, cells in enc["cells"].items():
        cell = cells.get("32")
        if not cell or "dynamic" not in cell["variants"]:
            continue
        v, ref = cell["variants"]["dynamic"], cell["variants"].get(REFERENCE, cell["variants"]["fp32"])
        acc = enc["accuracy"][setting].get("dynamic", {})
        drop = acc.get("drop_points", 0.0)
        met = verdicts[setting] = v["speedup"] >= TARGET_SPEEDUP and drop <= TARGET_DROP
        fp32_ms = cell["variants"]["fp32"]["median_ms"]
        line = (f"- **{SETTING_LABEL[setting]}, batch 32: {'met' if met else 'not met'}** — dynamic INT8 "
                f"{v['speedup']:.2f}× the shipped FP32 (median {v['median_ms']:.2f} vs {fp32_ms:.2f} ms; per block "
                f"{v['block_speedup_median']:.2f} [{v['block_speedup_iqr'][0]:.2f}–{v['block_speedup_iqr'][1]:.2f}]); "
                f"{ref['median_ms'] / v['median_ms']:.2f}× the pre-processed FP32 ({ref['median_ms']:.2f} ms, same "
                f"fusions: the INT8 effect alone). Accuracy drop {drop:+.2f} points (agreement "
                f"{acc.get('agreement', 0):.1%}, FP32 {_acc(enc['accuracy'][setting]['fp32']['accuracy'])}).")
        if v["speedup"] < TARGET_SPEEDUP:
            line += f" Short of {TARGET_SPEEDUP}× by {TARGET_SPEEDUP - v['speedup']:.2f}."
        a = amdahl(report, "encoder", setting)
        if a:
            line += (f" Profile (kernel ms/run): weight GEMMs {a['gemm_fp32_ms']:.2f} ms = {a['share_fp32']:.0%} of "
                     f"the shipped FP32 ({a['node_ms_fp32']:.2f} ms), {a['gemm_pre_ms']:.2f} ms = {a['share_pre']:.0%} "
                     f"of the pre-processed one ({a['node_ms_pre']:.2f}); dynamic INT8 runs them in "
                     f"{a['gemm_int8_ms']:.2f} ms (INT8 GEMMs + activation quantization: "
                     f"{a['gemm_speedup_pre']:.2f}×); everything else {a['rest_fp32_ms']:.2f} (shipped FP32) / "
                     f"{a['rest_pre_ms']:.2f} (pre-processed) / {a['rest_dynamic_ms']:.2f} ms (INT8). Amdahl with "
                     f"free GEMMs: ≤ {a['bound_fp32']:.2f}× the shipped FP32, ≤ {a['bound_pre']:.2f}× the "
                     "pre-processed one.")
        out.append(line)
    if verdicts:
        natural = verdicts.get("natural")
        tail = f"; at {LONG} tokens: {'met' if verdicts.get('long') else 'not met'}." if "long" in verdicts else "."
        out.insert(1, f"\n**Verdict: {'met' if natural else 'not met'}** at the task's own lengths (6–24 tokens, "
                   f"where the held-out task defines accuracy){tail}\n")
    return "\n".join(out)


def _load(env: dict[str, Any], when: str) -> str:
    return "/".join(f"{x:.2f}" for x in env["load_average_1_5_15"][when])


def markdown(report: dict[str, Any], notes: str) -> str:
    env, method = report["environment"], report["method"]
    cpu = env["cpu"]
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in cpu["flags"].items())
    v = env["versions"]
    versions = ", ".join(f"{k} {v[k]}" for k in ("python", "tritonize", "onnxruntime", "onnx", "torch", "numpy")
                         if k in v)
    quick = " (**--quick**: tiny, barely trained models, few repeats: a smoke test, not a measurement)" \
        if method["quick"] else ""
    return f"""# INT8 on onnxruntime: FP32 vs dynamic vs static{quick}

Generated by `benchmarks/int8.py` on {report['date']}.

- Machine: {cpu['model']}, {cpu['cores']} cores ({env['machine']}), {env['os']}
- CPU flags: {flags}
- Versions: {versions}; onnxruntime execution provider `CPUExecutionProvider` (available: \
{', '.join(env['onnxruntime_providers'])}; device {env['onnxruntime_device']})

## Method

- Models, trained once in a child process (one torch thread, fixed seeds, as the examples train), weights saved:

{models_table(report)}

- Variants, every one built from those weights by `tritonize.generator.build.build` (source: \
`benchmarks/int8.py:pretrained`, the example's `ModelBundle` with the saved weights), one `build()` per request, \
`accuracy_budget` raised to 100 so a large drop is recorded instead of refused:
  - `fp32`: the `onnx` format of the request `<model>_dynamic` (`formats=("onnx", "onnx-int8")`): what a user ships;
  - `dynamic`: its `onnx-int8` with `Quantization("dynamic")` (onnxruntime `quantize_dynamic`, INT8 weights, \
per-tensor, activations quantized at run time), the pipeline's default op types: MatMul and Gemm;
  - `dynamic-ort-default`: the same with `op_types` = what `quantize_dynamic` quantizes when given none \
({', '.join(VARIANTS['dynamic-ort-default']['op_types'])}), Conv among them;
  - `static-minmax` / `static-entropy` / `static-percentile`: `formats=("onnx-int8",)` with \
`Quantization("static", calibration=…)`: QDQ, INT8 weights and activations, per-tensor, the pipeline's default op \
types (every op type with a rule in onnxruntime's `QDQRegistry`), {method['calibration_samples']} calibration \
samples from the example's `calibration()`: training images / `make_task` batches of 6–24 tokens;
  - `static-gemm`: MinMax with `op_types` = Conv, Gemm, MatMul: Q/DQ around the GEMMs and convolutions only;
  - `static-ort-default`: MinMax with `op_types` = what `quantize_static` quantizes when given none \
(`QLinearOpsRegistry` + `QDQRegistry`, {len(VARIANTS['static-ort-default']['op_types'])} op types: Add, Mul, \
Softmax, Concat … too);
  - `{REFERENCE}` (reference, not a pipeline artifact): the `fp32` file after onnxruntime's `quant_pre_process` \
(symbolic shape inference + graph optimization), which is what the pipeline quantizes; it separates the fusions \
that pre-processing enables from the INT8 effect.

- Timing: the written `<repo>/<model>/1/model.onnx` files, one `onnxruntime.InferenceSession` each with identical \
options: `CPUExecutionProvider`, `intra_op_num_threads={method['threads']}` (the core count), \
`inter_op_num_threads=1`, `ORT_SEQUENTIAL`, `ORT_ENABLE_ALL`, thread spinning at its default. Per cell (model × \
input × batch): {method['warmup']} warm-up runs per variant, then {method['blocks']} blocks; in each block every \
variant runs the same `calls` inputs in the same order (calls sized so a block takes about {method['block_s']} s, \
{method['min_calls']}–{method['max_calls']}), the variant order reversing every block (ABBA), `gc.collect()` \
before each. Latency is one `session.run`, timed around the call; throughput = batch × runs / summed latency. \
Speedup = FP32 median / variant median; the per-block speedup (median and IQR over blocks) shows the noise.
- Inputs: held-out data only. Digits: the 360 test images. Sequences: the pipeline's evaluation set \
(`make_task(500, seed=2026)`, 6–24 tokens), each batch trimmed to its longest sequence; and \
`make_task(500, seed={EVAL_SEED_LONG}, min_len={LONG}, max_len={LONG})`. Positions 25–{LONG - 1} were never \
trained on, so accuracy at {LONG} tokens is \
reported but is not the task's accuracy. {method['feeds']} distinct batches per cell, cycled.
- Accuracy: each ONNX file on the whole set (max_batch_size samples a run, padded to the set's width), argmax vs \
labels; drop = FP32 ONNX − INT8 in points (positive = INT8 worse); agreement = same argmax as FP32 ONNX. The \
pipeline's own numbers (against the eager model) are below too.
- Graphs: op types counted with `onnx` in each file and in the graph onnxruntime actually runs \
(`optimized_model_filepath`, ORT_ENABLE_ALL). Profiles: `SessionOptions.enable_profiling`, batch 32, \
{method['profile_runs']} runs after {method['profile_warmup']} warm-up, node (kernel) time per run by op type; \
"weights" GEMMs have a constant second input (what quantization targets), "activations" are attention's \
Q·Kᵀ and P·V.
- Run time {report['elapsed_s']:.0f} s (build {report['build_s']:.0f} s). Load average (1/5/15 min) at start \
{_load(env, 'start')}, after the build {_load(env, 'after_build')}, at end {_load(env, 'end')}; each cell's \
1-min load is in the JSON. Other processes shared the 2 cores; the interleaving is for that.

## Results

{main_table(report)}

Machine load while each cell ran (from `/proc/stat` and `os.times()`; 2 cores in all): other processes' CPU is \
what the interleaving has to absorb.

{load_table(report)}

## What the pipeline reported (build-time gate, against the eager FP32 model)

{pipeline_table(report)}

## Quantized nodes

{graph_table(report)}

## Where the time goes (batch 32, onnxruntime profiler, ms per run and share of kernel time)

{profile_table(report)}

## Interpretation

{interpretation(report)}
{notes}"""


def _profile_at(model: dict[str, Any], variant: str) -> tuple[str, dict[str, Any]] | None:
    """The batch-32 profile of ``variant`` at the model's largest input setting."""
    for setting in ("long", "images", "natural"):
        p = model.get("profiles", {}).get(setting, {}).get(variant)
        if p:
            return setting, p
    return None


def observations(report: dict[str, Any]) -> str:
    """Per model, why the INT8 variants are as fast as they are, from graphs and profiles; the pipeline's issues."""
    lines = ["", "### Why, per model", ""]
    for key, model in report["models"].items():
        graphs, parts = model.get("graphs", {}), []
        fp32 = _profile_at(model, "fp32")
        if not fp32 or "dynamic" not in graphs:
            continue
        setting, base = fp32
        gemm_ms = base["groups_ms"].get("fp32 gemm (weights)", 0.0)
        parts.append(f"at {SETTING_LABEL[setting]}, batch 32, FP32 spends {gemm_ms:.2f} of {base['node_ms']:.2f} "
                     f"kernel ms ({gemm_ms / (base['node_ms'] or 1):.0%}) in weight GEMMs/Convs — the only part INT8 "
                     "kernels can speed up")
        for variant in ("dynamic", "dynamic-ort-default"):
            dyn, g = model["profiles"][setting].get(variant), graphs.get(variant)
            if not dyn or not g:
                continue
            running = g["running"]
            int8_ops = ", ".join(f"{op} {running[op]}" for op in sorted(INT8_GEMM) if running.get(op))
            cell = model["cells"][setting]["32"]["variants"][variant]
            attention = g["fp32_activation_matmuls_running"]
            parts.append(f"{variant} runs {int8_ops} in {dyn['groups_ms'].get('int8 gemm', 0):.2f} ms "
                         f"(+{dyn['groups_ms'].get('(de)quantize', 0):.2f} ms quantize nodes)"
                         + (f"; {attention} activation×activation MatMuls (attention) stay FP32" if attention else "")
                         + f"; measured {cell['speedup']:.2f}×")
            if running.get("ConvInteger"):
                conv = dyn["by_op_ms"].get("ConvInteger", 0.0)
                fp32_conv = base["by_op_ms"].get("Conv", 0.0) + base["by_op_ms"].get("FusedConv", 0.0)
                parts.append(f"ConvInteger takes {conv:.2f} ms where FP32 Conv took {fp32_conv:.2f} ms "
                             "(onnxruntime's ConvInteger CPU kernel is not a fast path): why tritonize's dynamic "
                             "default leaves Conv in FP32")
        for variant in ("static-minmax", "static-gemm", "static-ort-default"):
            g, sp = graphs.get(variant), model["profiles"][setting].get(variant)
            if not g or not sp:
                continue
            qdq = g["running"].get("QuantizeLinear", 0) + g["running"].get("DequantizeLinear", 0)
            cell = model["cells"][setting]["32"]["variants"][variant]
            unfused = g["fp32_weight_gemms_on_dequantized_weights"]
            parts.append(f"{variant}: {qdq} standalone QuantizeLinear/DequantizeLinear nodes survive onnxruntime's "
                         f"QDQ fusion and cost {sp['groups_ms'].get('(de)quantize', 0):.2f} ms "
                         f"({sp['groups_ms'].get('(de)quantize', 0) / (sp['node_ms'] or 1):.0%})"
                         + (f"; {unfused} weight GEMMs are not fused into QLinearMatMul/QGemm and run in FP32 on "
                            "weights dequantized every run "
                            f"({sp['groups_ms'].get('fp32 gemm (weights)', 0):.2f} ms)" if unfused else "")
                         + f"; measured {cell['speedup']:.2f}×")
        lines.append(f"- **{key}**: " + "; ".join(parts) + ".")
    lines += ["", "### The pipeline's own numbers and gates", ""]
    for key, model in report["models"].items():
        for variant, b in model["builds"].items():
            if "error" in b:
                lines.append(f"- {key} {variant}: the build failed: {b['error'][:300]}")
                continue
            r = b["report"]
            if r and (r["accuracy_drop_points"] or 0) > TARGET_DROP:
                lines.append(f"- {key} {variant}: accuracy drop {r['accuracy_drop_points']:+.2f} points against the "
                             "eager model: with the default `accuracy_budget` (1 point) `build()` refuses it.")
            cells = model["cells"].get(model["spec"]["settings"][0], {})
            for batch, pipeline_speedup in (r["speedup"].items() if r else ()):
                measured = cells.get(batch, {}).get("variants", {}).get(variant)
                if measured and abs(np.log(pipeline_speedup / measured["speedup"])) > np.log(1.5):
                    lines.append(f"- {key} {variant}, batch {batch}: the build reported {pipeline_speedup:.2f}× "
                                 f"FP32, the interleaved measurement {measured['speedup']:.2f}× "
                                 "(`optimize.compare_latency`: FP32 and INT8 alternated for about a second, far "
                                 "fewer runs than here).")
        if model.get("preprocess", "quant_pre_process") != "quant_pre_process":
            lines.append(f"- {key}: onnxruntime's `quant_pre_process` with its defaults fails on the FP32 export; "
                         "`optimize.quantize_onnx` retries without symbolic shape inference and says so in the "
                         f"technique (table above). `{REFERENCE}` here: {model['preprocess'][:300]}")
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------------------------------------
def preprocessed(fp32: Path, out: Path) -> tuple[Path, str]:
    """The FP32 file after onnxruntime's quant_pre_process (shape inference + graph optimization), as the pipeline
    runs it before quantizing; where symbolic shape inference fails (the pipeline then quantizes the raw export),
    again without it. Timed as a reference, so that fusions are not credited to INT8."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cwd = os.getcwd()
    os.chdir(out.parent)  # a failing symbolic shape inference writes its debug dump into the current directory
    try:
        quant_pre_process(str(fp32), str(out))
        return out, "quant_pre_process"
    except Exception as exc:
        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
        return out, (f"quant_pre_process(skip_symbolic_shape=True): the default raised {type(exc).__name__}: "
                     f"{exc}")
    finally:
        os.chdir(cwd)


def measure_model(spec: ModelSpec, info: dict[str, Any], names: list[str], work: Path,
                  plan: dict[str, Any]) -> dict[str, Any]:
    threads = plan["threads"]
    model: dict[str, Any] = {**info, "files": {}, "accuracy": {}, "cells": {}, "graphs": {}, "profiles": {}}
    if "error" in info["builds"]["dynamic"]:  # FP32 comes with the dynamic request: nothing to compare with
        return model
    paths = {v: work / "repo" / model_dir(spec.key, v) / "1" / "model.onnx" for v in names
             if v == "fp32" or "error" not in info["builds"][v]}
    try:
        path, model["preprocess"] = preprocessed(paths["fp32"], work / f"{spec.key}-fp32-pre.onnx")
        reference = {REFERENCE: path}
    except Exception as exc:
        reference, model["preprocess"] = {}, f"failed: {type(exc).__name__}: {exc}"
    paths = {"fp32": paths["fp32"], **reference, **{v: p for v, p in paths.items() if v != "fp32"}}
    sessions = {v: open_session(p, threads) for v, p in paths.items()}
    sets = load_sets(work / f"{spec.key}.npz")
    fp32_bytes = paths["fp32"].stat().st_size
    for v, p in paths.items():
        model["files"][v] = {"bytes": p.stat().st_size, "ratio": p.stat().st_size / fp32_bytes}
        model["graphs"][v] = graph_ops(p, threads, work)
    for setting in spec.settings:
        inputs, labels = sets[setting]
        logits = {v: accuracy(s, inputs, labels, spec.max_batch_size) for v, s in sessions.items()}
        base = logits["fp32"].argmax(-1)
        acc_fp32 = float((base == labels).mean())
        model["accuracy"][setting] = {}
        for v, x in logits.items():
            acc = float((x.argmax(-1) == labels).mean())
            model["accuracy"][setting][v] = {
                "accuracy": acc, "drop_points": (acc_fp32 - acc) * 100,
                "agreement": float((x.argmax(-1) == base).mean()),
                "max_abs_diff": float(np.abs(x - logits["fp32"]).max()), "samples": len(labels)}
        model["cells"][setting] = {}
        for batch in BATCHES:
            print(f"[{spec.key}] timing {SETTING_LABEL[setting]}, batch {batch} ...", file=sys.stderr)
            model["cells"][setting][str(batch)] = measure_cell(
                sessions, feeds(inputs, batch, plan["feeds"]), batch, plan["blocks"], plan["block_s"],
                plan["min_calls"], plan["max_calls"], plan["warmup"])
        batches = feeds(inputs, 32, plan["feeds"])
        model["profiles"][setting] = {
            v: profile(p, batches, threads, plan["profile_warmup"], plan["profile_runs"],
                       model["graphs"][v]["weight_nodes"], work) for v, p in paths.items()}
    for g in model["graphs"].values():
        g["weight_nodes"] = len(g["weight_nodes"])
    return model


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started, load_start = time.monotonic(), os.getloadavg()
    built_variants = args.variants.split(",") if args.variants else (QUICK_VARIANTS if args.quick else list(VARIANTS))
    for v in built_variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: {v!r} is not one of {', '.join(VARIANTS)}")
    if "dynamic" not in built_variants:
        raise SystemExit("--variants: 'dynamic' is needed (its request builds the FP32 parent)")
    plan: dict[str, Any] = {
        "quick": args.quick, "threads": args.threads or os.cpu_count() or 1,
        "blocks": args.blocks or (2 if args.quick else 16), "block_s": args.block_s or (0.02 if args.quick else 0.25),
        "min_calls": 2 if args.quick else 5, "max_calls": 20 if args.quick else 300,
        "warmup": 2 if args.quick else 10, "feeds": 4 if args.quick else 16,
        "profile_warmup": 1 if args.quick else 5, "profile_runs": 2 if args.quick else 20,
    }
    with tempfile.TemporaryDirectory(prefix="tritonize-int8-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        child = [sys.executable, str(THIS), "--build-into", str(work), "--variants", ",".join(built_variants)]
        # cwd: onnxruntime's symbolic shape inference dumps sym_shape_infer_temp.onnx + <uuid>.data into the current
        # directory when it fails (it does on the sequence models); keep that litter in the temporary directory
        subprocess.run(child + (["--quick"] if args.quick else []), check=True, cwd=work)
        build_s = time.monotonic() - t0
        load_after_build = os.getloadavg()
        built = json.loads((work / "build.json").read_text())
        report: dict[str, Any] = {"models": {spec.key: measure_model(spec, built["models"][spec.key],
                                                                     ["fp32", *built_variants], work, plan)
                                             for spec in model_specs(args.quick)}}
    env = environment(built["environment"])
    env["load_average_1_5_15"] = {"start": load_start, "after_build": load_after_build, "end": os.getloadavg()}
    report.update({
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "environment": env,
        "method": {**plan, "batches": list(BATCHES), "variants": built_variants, "calibration_samples": 128,
                   "reference": REFERENCE, "torch_threads_in_build": built["torch_threads"],
                   "session_options": {"intra_op_num_threads": plan["threads"], "inter_op_num_threads": 1,
                                       "execution_mode": "ORT_SEQUENTIAL", "graph_optimization_level": "ORT_ENABLE_ALL",
                                       "providers": ["CPUExecutionProvider"]}},
        "target": {"speedup": TARGET_SPEEDUP, "max_drop_points": TARGET_DROP, "model": "encoder", "batch": 32},
        "elapsed_s": time.monotonic() - started, "build_s": build_s,
    })
    report["amdahl"] = {s: amdahl(report, "encoder", s) for s in ("natural", "long")}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny models, few repeats (smoke test); writes only with --out")
    parser.add_argument("--out", type=Path, help=f"where to write int8.md/.json (default: {RESULTS})")
    parser.add_argument("--variants", help=f"INT8 variants to build, comma-separated, of {','.join(VARIANTS)} "
                        f"(default: all; quick: {','.join(QUICK_VARIANTS)})")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: the core count)")
    parser.add_argument("--blocks", type=int, help="interleaved blocks per cell (default 16; quick 2)")
    parser.add_argument("--block-s", type=float, help="seconds per variant per block (default 0.25; quick 0.02)")
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the interpretation")
    parser.add_argument("--from-json", type=Path, help=argparse.SUPPRESS)  # re-render a saved report
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)  # the child process that trains/builds
    args = parser.parse_args(argv)
    if args.build_into:
        prepare(args.build_into, args.quick, args.variants.split(","))
        return 0
    report = json.loads(args.from_json.read_text()) if args.from_json else run_benchmark(args)
    notes = observations(report) + ("\n" + args.notes.read_text() if args.notes else "")
    text = markdown(report, notes)
    print(main_table(report))
    out_dir = args.out if args.out else (None if args.quick or args.from_json else RESULTS)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "int8.md").write_text(text)
        if not args.from_json:
            (out_dir / "int8.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {out_dir / 'int8.md'}" + ("" if args.from_json else " and int8.json"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
