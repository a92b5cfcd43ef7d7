"""``onnx-int8``: the FP32 ONNX export quantized by onnxruntime, dynamic or static (QDQ, calibrated)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tritonize.core.loader import summary
from tritonize.core.log import logger

from ..accuracy import choose_per_channel
from ..errors import ExportError
from ..optimize import calibration_batches, load_samples, quantize_onnx
from ..quantization import Quantization
from ..runners import OnnxRunner
from . import Artifact, ExportJob
from ._torch import from_callable
from .onnx import fit_to_target

_log = logger(__name__)


def export_onnx_int8(job: ExportJob) -> Artifact:
    from_callable(job.loaded, job.format.name)
    loaded, req = job.loaded, job.request
    q = req.options(job.format.name).quantization or Quantization()
    fp32 = job.fp32(job.format.fp32)
    batches: list[dict[str, np.ndarray]] = []
    if q.method == "static":
        source = (load_samples(q.calibration_data) if q.calibration_data else
                  loaded.calibration() if loaded.calibration else None)
        if source is None:
            _log.warning(f"[{job.model_name}] no calibration data given: calibrating on synthesized inputs")
            source = (loaded.samples.batch(max(req.max_batch_size, 1), seed=500 + i) for i in range(64))
        batches = calibration_batches(source, fp32.input_names, q.calibration_samples, job.model_name)
    path = job.directory / "model.onnx"
    variants = (False, True) if q.per_channel is None else (q.per_channel,)
    outs = {pc: path.with_name(f"per_{'channel' if pc else 'tensor'}.onnx") for pc in variants}
    try:
        what = quantize_onnx(fp32.path, outs, q, batches)
        for out in outs.values():
            fit_to_target(out, req.target)
        runners = {pc: OnnxRunner(out, fp32.input_names) for pc, out in outs.items()}
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{job.format.name} quantization failed: {summary(exc)}") from exc
    details = {**fp32.details}
    chosen = variants[0]
    if len(variants) > 1:
        chosen, details["per_channel_choice"] = choose_per_channel(req, job.format.name, loaded, runners)
        _log.info(f"[{job.model_name}] {details['per_channel_choice']}")
    for pc, out in outs.items():
        if pc != chosen:
            out.unlink()
    outs[chosen].rename(path)
    details["quantization"] = what[chosen]
    return dataclasses.replace(fp32, path=path, method=f"int8 {q.method}", runner=OnnxRunner(path, fp32.input_names),
                               details=details)
