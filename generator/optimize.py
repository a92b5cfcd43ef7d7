"""INT8 quantization and pruning, each measured against its FP32 parent before it may enter a repository.

- ``onnx-int8``: onnxruntime ``quantize_dynamic`` (INT8 weights) or ``quantize_static`` (QDQ, INT8 weights and
  activations, calibrated with MinMax / Entropy / Percentile on samples the user provides);
- ``torchscript-int8``: ``torch.ao.quantization.quantize_dynamic`` on Linear/LSTM/GRU, then traced (CPU only);
- pruning: L1 unstructured pruning of Linear/Conv weights, made permanent before export.

Per-channel weight scales (``quantization.per_channel``) unset: both variants are built and the one the accuracy
gate's metric judges better is kept. The gate (``accuracy.py``) compares the optimized artifact with the FP32 eager
model on the metric of the model's task (accuracy or agreement, cosine and nearest neighbours, relative error).
The speed and size report times both artifacts on this CPU (warmed up, median of repeats); INT8 slower than FP32
is a warning.
"""

from __future__ import annotations

import copy
import gzip
import logging
import os
import statistics
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tritonize.core.loader import load_callable, summary
from tritonize.core.log import logger, progress

from .errors import ModelLoadError, SpecError, TritonizeError
from .quantization import QUANTIZABLE_MODULES, Quantization
from .runners import Runner

MIN_CALIBRATION_SAMPLES = 32
_log = logger(__name__)
TORCH_QUANTIZABLE = {"Linear": torch.nn.Linear, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}
assert set(TORCH_QUANTIZABLE) == set(QUANTIZABLE_MODULES)


class AccuracyError(TritonizeError):
    """An optimized artifact lost more accuracy (or agreement) than its budget allows."""


@dataclass
class OptimizationReport:
    artifact: str
    technique: str  # e.g. "onnx int8 static (QDQ, minmax, 128 samples)", "pruned 50%"
    parent: str  # what it is compared with
    accuracy_fp32: float | None
    accuracy: float | None
    accuracy_drop_points: float | None
    agreement: float | None  # classification: same top class as FP32
    max_abs_diff: float
    mean_abs_diff: float
    evaluated_on: str
    latency_ms: dict[str, dict[str, float]]  # batch -> {"fp32": ms, "optimized": ms}
    speedup: dict[str, float]
    size_bytes: dict[str, int]  # fp32, optimized
    size_ratio: float
    gzip_size_ratio: float | None  # pruned models only
    sparsity: float | None = None
    batch_invariance_max_abs: float | None = None
    warnings: list[str] = field(default_factory=list)
    task: str = "classification"  # what judged it (accuracy.infer_task): classification | embedding | regression
    judged_by: str = ""  # the metric, e.g. "cosine (embedding)"
    judged_output: str = ""
    evaluation_samples: int = 0
    summary: str = ""  # the judged numbers in a few words
    cosine_mean: float | None = None  # embedding
    cosine_min: float | None = None
    neighbor_agreement: float | None = None
    neighbor_samples: int | None = None
    relative_error: float | None = None  # regression
    per_channel: str | None = None  # how per-tensor vs per-channel was chosen, with both numbers

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recorded(self) -> dict[str, Any]:
        """What the manifest keeps: everything but timings, which describe this machine at this moment and
        would make rebuilds of the same inputs differ (they are printed instead)."""
        return {k: v for k, v in self.as_dict().items() if k not in ("latency_ms", "speedup", "warnings")}


# --- pruning ------------------------------------------------------------------------------------------------


def prune_module(module: torch.nn.Module, amount: float) -> tuple[torch.nn.Module, float]:
    """A copy with ``amount`` of every Linear/Conv weight zeroed by L1 magnitude, made permanent; and the
    resulting sparsity of those weights."""
    from torch.nn.utils import prune

    if not 0 < amount < 1:
        raise SpecError("prune", amount, "a fraction in (0, 1) of Linear/Conv weights to zero")
    pruned = copy.deepcopy(module)
    layers = [m for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))]
    if not layers:
        raise SpecError("prune", amount, "a model with Linear or Conv layers (it has none)")
    for layer in layers:
        prune.l1_unstructured(layer, "weight", amount=amount)
        prune.remove(layer, "weight")
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    total = sum(layer.weight.numel() for layer in layers)
    return pruned.eval(), zeros / total


# --- quantization -------------------------------------------------------------------------------------------


class _FromOnnxRuntime(logging.Filter):
    """onnxruntime.quantization logs advice through the root logger's functions; drop just those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}onnxruntime{os.sep}" not in record.pathname


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep the build's output ours: no deprecation notes, no onnxruntime advice (the host's logging untouched)."""
    drop = _FromOnnxRuntime()
    logging.getLogger().addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger().removeFilter(drop)


def quantize_torch_module(module: torch.nn.Module, q: Quantization, per_channel: bool = False) -> torch.nn.Module:
    """Dynamic INT8 (weights INT8, activations quantized on the fly) of the chosen module types; CPU only."""
    if q.method != "dynamic":
        raise SpecError("torchscript-int8.quantization.method", q.method, "dynamic (TorchScript INT8 is dynamic)")
    types = {TORCH_QUANTIZABLE[name] for name in q.modules}
    if not any(isinstance(m, tuple(types)) for m in module.modules()):
        raise SpecError("torchscript-int8", "no " + "/".join(q.modules) + " layers",
                        "a model with layers dynamic quantization applies to (use onnx-int8 for convolutions)")
    with _quiet():
        qconfig = (torch.ao.quantization.per_channel_dynamic_qconfig if per_channel
                   else torch.ao.quantization.default_dynamic_qconfig)
        spec = {t: qconfig for t in types}
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), spec, dtype=torch.qint8).eval()


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of input dicts."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # some calibrators call it
        pass


def default_op_types(method: str) -> tuple[tuple[str, ...], str]:
    """The op types quantized when a request names none, and how the report says it."""
    if method == "dynamic":
        # onnxruntime fuses quantize + integer GEMM for MatMul/Gemm; its ConvInteger is far slower than FP32 Conv
        # on CPU (0.08x on the digits CNN), so convolutions stay FP32 unless asked for (benchmarks/results/int8.md)
        return ("MatMul", "Gemm"), "MatMul/Gemm"
    # static (QDQ): every op type the QDQ quantizer has a rule for, so chains of Q/DQ fuse into QLinear kernels
    # (onnxruntime's own default adds the QLinear-only ops; GEMMs alone leave standalone Q/DQ: int8.md compares)
    from onnxruntime.quantization.registry import QDQRegistry

    return tuple(sorted(QDQRegistry)), "the ops with a QDQ rule"


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """onnxruntime's shape inference writes temporary files into the current directory."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _preprocess(fp32: Path) -> tuple[Path, str]:
    """onnxruntime's recommended pre-processing (shape inference, graph optimization); symbolic shape
    inference fails on some graphs (e.g. variable sequence lengths), so it is retried without it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = fp32.with_name("preprocessed.onnx")
    with _working_directory(fp32.parent):
        for skip_symbolic, what in ((False, "pre-processed"), (True, "pre-processed without symbolic shapes")):
            try:
                quant_pre_process(str(fp32), str(out), skip_symbolic_shape=skip_symbolic)
                return out, what
            except Exception as exc:
                failure = summary(exc)
    return fp32, f"not pre-processed ({failure})"


def quantize_onnx(fp32: Path, outs: Mapping[bool, Path], q: Quantization,
                  calibration: list[dict[str, np.ndarray]]) -> dict[bool, str]:
    """Write one INT8 model per per-channel setting in ``outs`` (pre-processed once); describe each."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    op_types, described = (q.op_types, "/".join(q.op_types)) if q.op_types else default_op_types(q.method)
    samples = sum(len(next(iter(b.values()))) for b in calibration)
    done = {}
    with _quiet():
        source, prepared = _preprocess(fp32)
        for per_channel, out in outs.items():
            common: dict[str, Any] = {"per_channel": per_channel, "op_types_to_quantize": list(op_types),
                                      "nodes_to_exclude": list(q.nodes_to_exclude) or None,
                                      "weight_type": QuantType.QInt8}
            scales = " per-channel" if per_channel else ""
            with _working_directory(fp32.parent):
                if q.method == "dynamic":
                    quantize_dynamic(str(source), str(out), **common)
                    done[per_channel] = f"onnxruntime dynamic INT8{scales} of {described}, {prepared}"
                    continue
                method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                          "percentile": CalibrationMethod.Percentile}[q.calibration]
                quantize_static(str(source), str(out), _Reader(calibration), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, calibrate_method=method, **common)
            done[per_channel] = (f"onnxruntime static INT8{scales} (QDQ, {q.calibration}, {samples} calibration "
                                 f"samples) of {described}, {prepared}")
    return done


def load_npz(path: str, field_name: str) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise SpecError(field_name, path, "an existing .npz file of arrays by input name")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def call_ref(ref: str, field_name: str) -> Any:
    """Call ``module:function`` or ``file.py:function`` (no arguments) and return what it returns."""
    fn = load_callable(ref, field_name)
    try:
        return fn()
    except Exception as exc:
        raise ModelLoadError(f"{field_name} {ref!r} raised {summary(exc)}") from exc


def load_samples(ref: str) -> Iterable[Mapping[str, Any]]:
    """Calibration input dicts from an .npz (one batch of arrays by input name) or a ``module:function``
    returning an iterable of input dicts."""
    if ref.endswith(".npz"):
        return [load_npz(ref, "calibration_data")]
    return list(call_ref(ref, "calibration_data"))


def calibration_batches(source: Iterable[Mapping[str, Any]], input_names: list[str], wanted: int,
                        label: str) -> list[dict[str, np.ndarray]]:
    """Batches of about ``wanted`` samples in total; a warning when there are too few to calibrate."""
    batches, count = [], 0
    with progress(f"[{label}] calibration samples", total=wanted) as bar:
        for raw in source:
            batch = {n: np.asarray(raw[n].detach().numpy() if hasattr(raw[n], "detach") else raw[n])
                     for n in input_names}
            batches.append(batch)
            size = len(next(iter(batch.values())))
            count += size
            bar.advance(size)
            if count >= wanted:
                break
    if count < MIN_CALIBRATION_SAMPLES:
        _log.warning(f"[{label}] {count} calibration samples (fewer than {MIN_CALIBRATION_SAMPLES}): activation "
            "ranges may not represent real inputs")
    return batches


# --- measuring ----------------------------------------------------------------------------------------------


def compare_latency(baseline: Runner, candidate: Runner, batch: Mapping[str, np.ndarray],
                    budget_s: float = 1.0, max_pairs: int = 2000) -> tuple[float, float]:
    """Median ms of each, timed alternately (so machine noise hits both alike) within about ``budget_s``."""
    for runner in (baseline, candidate, baseline, candidate):  # warm-up
        runner(batch)
    times: tuple[list[float], list[float]] = ([], [])
    order = ((baseline, times[0]), (candidate, times[1]))
    deadline = time.perf_counter() + budget_s
    while len(times[0]) < 5 or (len(times[0]) < max_pairs and time.perf_counter() < deadline):
        for runner, bucket in order if len(times[0]) % 2 == 0 else order[::-1]:  # ABBA
            start = time.perf_counter()
            runner(batch)
            bucket.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times[0])), float(statistics.median(times[1]))


def file_sizes(fp32: Path, optimized: Path, compressed: bool) -> tuple[dict[str, int], float, float | None]:
    """Sizes, their ratio and (``compressed``: for pruned models, where it is what pruning buys) the ratio of the
    gzipped files. gzip costs a quarter of a MiniLM-sized INT8 build (benchmarks/results/build_time.md)."""
    a, b = fp32.read_bytes(), optimized.read_bytes()
    zipped = len(gzip.compress(b, 6, mtime=0)) / len(gzip.compress(a, 6, mtime=0)) if compressed else None
    return {"fp32": len(a), "optimized": len(b)}, len(b) / len(a), zipped
