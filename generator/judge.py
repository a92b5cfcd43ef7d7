"""Judge an optimized (INT8 or pruned) artifact against its FP32 parent: the accuracy gate on the metric of the
model's task (``accuracy.py``), then speed and size on this CPU. Nothing optimized reaches a repository without
passing here."""

from __future__ import annotations

from tritonize.core import formats
from tritonize.core.log import logger

from .accuracy import budget_keys, check_budgets, measure, reference
from .exporters import Artifact
from .optimize import OptimizationReport, compare_latency, file_sizes
from .quantization import Quantization
from .request import ModelRequest
from .source import LoadedModel

_log = logger(__name__)


def _convolutional(loaded: LoadedModel) -> bool:
    import torch

    return loaded.module is not None and any(isinstance(m, torch.nn.modules.conv._ConvNd)
                                             for m in loaded.module.modules())


def _hint(req: ModelRequest, fmt: str, task: str, loaded: LoadedModel) -> str:
    """What to try when the gate refuses an artifact: static calibration helps convolutional networks; for
    transformers and embedders (activations with outliers) per-channel weights and excluded nodes do."""
    q = req.options(fmt).quantization or Quantization()
    tips = [f"prune less than {req.prune:g}"] if req.prune else []
    if fmt == "onnx-int8":
        if q.per_channel is False:
            tips.append("set quantization.per_channel = true")
        if q.method == "static":
            tips.append("calibrate on representative data, try entropy/percentile" if _convolutional(loaded)
                        else "try quantization.method = dynamic")
        elif _convolutional(loaded):
            tips.append("try quantization.method = static with representative data")
        tips.append("exclude sensitive nodes (quantization.nodes_to_exclude) or quantize fewer op types "
                    "(quantization.op_types)")
    elif fmt == "torchscript-int8":
        tips.append("quantize fewer module types (quantization.modules)")
        if q.per_channel is False:
            tips.append("set quantization.per_channel = true")
    tips.append(f"relax [models.{req.name}.{fmt}] {budget_keys(task)}")
    return ", or ".join(tips)


def judge(req: ModelRequest, fmt: str, loaded: LoadedModel, parent: LoadedModel, artifact: Artifact,
          fp32: Artifact, sparsity: float | None) -> OptimizationReport:
    """Accuracy gate and speed/size report of ``artifact`` against the FP32 model ``parent``/``fp32``."""
    name, opts, base = req.model_name(fmt), req.options(fmt), formats.FORMATS[fmt].fp32
    ref = reference(req, parent, keep=False)  # pruning keeps the evaluation set and the samples: the same set
    task, evaluation = ref.task, ref.evaluation
    technique = artifact.details.get("quantization") or ""
    if sparsity is not None:
        technique = ", ".join(filter(None, [f"L1-pruned {req.prune:.0%} (sparsity {sparsity:.1%})", technique]))
    measured = measure(name, task, loaded.outputs[ref.output].name, ref.outputs, ref.run(artifact.runner, req, loaded),
                       evaluation.labels)
    choice = artifact.details.get("per_channel_choice")
    check_budgets(name, measured, opts, (f"{choice}; " if choice else "") + _hint(req, fmt, task, loaded))
    _log.info(f"[{name}] judged by {measured.judged_by} on {measured.samples} samples: {measured.summary}")
    latency, speedup = {}, {}
    for size in sorted({1, req.max_batch_size} - {0}):
        fp32_ms, optimized_ms = compare_latency(fp32.runner, artifact.runner, loaded.samples.batch(size, seed=77))
        latency[str(size)] = {"fp32": fp32_ms, "optimized": optimized_ms}
        speedup[str(size)] = fp32_ms / optimized_ms
    sizes, ratio, zipped = file_sizes(fp32.path, artifact.path, compressed=sparsity is not None)
    warnings = [f"slower than FP32 at batch {b} ({x:.2f}× its speed): check before deploying (onnxruntime#6732)"
                for b, x in speedup.items() if x < 1 and formats.FORMATS[fmt].optimized]
    if sparsity is not None:
        warnings.append("unstructured sparsity does not make dense kernels faster: it buys compressed size "
                        f"({zipped:.2f}× with gzip) at the measured accuracy")
    for warning in warnings:
        _log.warning(f"[{name}] {warning}")
    v = measured.values
    return OptimizationReport(
        name, technique, f"FP32 {base} (unpruned)" if req.prune else f"FP32 {base}",
        accuracy_fp32=v.get("accuracy_fp32"), accuracy=v.get("accuracy"),
        accuracy_drop_points=v.get("accuracy_drop_points"), agreement=v.get("agreement"),
        max_abs_diff=float(v["max_abs_diff"] or 0), mean_abs_diff=float(v["mean_abs_diff"] or 0),
        evaluated_on=evaluation.where, latency_ms=latency, speedup=speedup, size_bytes=sizes, size_ratio=ratio,
        gzip_size_ratio=zipped, sparsity=sparsity, warnings=warnings, task=task, judged_by=measured.judged_by,
        judged_output=measured.output, evaluation_samples=measured.samples, summary=measured.summary,
        cosine_mean=v.get("cosine_mean"), cosine_min=v.get("cosine_min"),
        neighbor_agreement=v.get("neighbor_agreement"),
        neighbor_samples=None if v.get("neighbor_samples") is None else int(v["neighbor_samples"] or 0),
        relative_error=v.get("relative_error"), per_channel=choice)
