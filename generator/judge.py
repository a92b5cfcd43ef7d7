"""Judge an optimized (INT8 or pruned) artifact against its FP32 parent: the accuracy gate, then speed and
size on this CPU. Nothing optimized reaches a repository without passing here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tritonize.core import formats
from tritonize.core.log import logger

from .exporters import Artifact
from .optimize import (
    OptimizationReport,
    accuracy_gate,
    call_ref,
    compare_latency,
    file_sizes,
    load_npz,
    run_in_chunks,
)
from .quantization import Quantization
from .request import ModelRequest
from .source import LoadedModel

_log = logger(__name__)


def evaluation_set(req: ModelRequest, loaded: LoadedModel) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """The labeled set the accuracy gate uses; without one, samples of the model's inputs (no labels)."""
    raw: tuple[Mapping[str, Any], Any]
    if req.evaluation:
        if req.evaluation.endswith(".npz"):
            arrays = load_npz(req.evaluation, "evaluation")
            raw = (arrays, arrays.pop("labels", None))
        else:
            raw = call_ref(req.evaluation, "evaluation")
        where = req.evaluation
    elif loaded.evaluation is not None:
        raw, where = loaded.evaluation(), "the model's evaluation set"
    else:
        batches = [loaded.samples.batch(max(req.max_batch_size, 1), seed=900 + i) for i in range(8)]
        raw = ({k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, None)
        where = "synthesized inputs (no labels: agreement is the gate)"
    inputs = {i.name: np.asarray(raw[0][i.name]) for i in loaded.inputs}
    labels = None if raw[1] is None else np.asarray(raw[1])
    return inputs, labels, where


def _hint(req: ModelRequest, fmt: str) -> str:
    """What to try when the gate refuses an artifact."""
    q = req.options(fmt).quantization or Quantization()
    by_format = {
        "onnx-int8": "calibrate on representative data, try entropy/percentile, or exclude sensitive nodes, or "
        if q.method == "static" else "try quantization.method = static with representative data, or ",
        "torchscript-int8": "quantize fewer module types (quantization.modules), or ",
    }
    return ((f"prune less than {req.prune:g}, or " if req.prune else "") + by_format.get(fmt, "")
            + f"raise [models.{req.name}.{fmt}] accuracy_budget")


def judge(req: ModelRequest, fmt: str, loaded: LoadedModel, parent: LoadedModel, artifact: Artifact,
          fp32: Artifact, sparsity: float | None) -> OptimizationReport:
    """Accuracy gate and speed/size report of ``artifact`` against the FP32 model ``parent``/``fp32``."""
    name, opts, base = req.model_name(fmt), req.options(fmt), formats.FORMATS[fmt].fp32
    inputs, labels, where = evaluation_set(req, loaded)
    chunk = max(req.max_batch_size, 1)
    technique = artifact.details.get("quantization") or ""
    if sparsity is not None:
        technique = ", ".join(filter(None, [f"L1-pruned {req.prune:.0%} (sparsity {sparsity:.1%})", technique]))
    metrics = accuracy_gate(name, run_in_chunks(parent.reference, inputs, chunk),
                            run_in_chunks(artifact.runner, inputs, chunk), labels, opts.accuracy_budget,
                            _hint(req, fmt))
    latency, speedup = {}, {}
    for size in sorted({1, req.max_batch_size} - {0}):
        fp32_ms, optimized_ms = compare_latency(fp32.runner, artifact.runner, loaded.samples.batch(size, seed=77))
        latency[str(size)] = {"fp32": fp32_ms, "optimized": optimized_ms}
        speedup[str(size)] = fp32_ms / optimized_ms
    sizes, ratio, zipped = file_sizes(fp32.path, artifact.path)
    warnings = [f"slower than FP32 at batch {b} ({x:.2f}× its speed): check before deploying (onnxruntime#6732)"
                for b, x in speedup.items() if x < 1 and formats.FORMATS[fmt].optimized]
    if sparsity is not None:
        warnings.append("unstructured sparsity does not make dense kernels faster: it buys compressed size "
                        f"({zipped:.2f}× with gzip) at the measured accuracy")
    for warning in warnings:
        _log.warning(f"[{name}] {warning}")
    return OptimizationReport(name, technique, f"FP32 {base} (unpruned)" if req.prune else f"FP32 {base}",
                              evaluated_on=where, latency_ms=latency, speedup=speedup, size_bytes=sizes,
                              size_ratio=ratio, gzip_size_ratio=zipped, sparsity=sparsity, warnings=warnings,
                              **metrics)  # type: ignore[arg-type]
