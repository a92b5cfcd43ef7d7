"""``torchscript-int8``: torch.ao dynamic INT8 of Linear/LSTM/GRU, then traced or scripted (CPU kernels only)."""

from __future__ import annotations

import dataclasses

from tritonize.core.log import logger

from ..optimize import quantize_torch_module
from ..quantization import Quantization
from . import Artifact, ExportJob
from ._torch import from_callable
from .torchscript import write_torchscript

_log = logger(__name__)


def export_torchscript_int8(job: ExportJob) -> Artifact:
    from_callable(job.loaded, job.format.name)
    assert job.loaded.module is not None
    q = job.request.options(job.format.name).quantization or Quantization()
    quantized = quantize_torch_module(job.loaded.module, q)
    artifact = write_torchscript(dataclasses.replace(job.loaded, module=quantized), job.directory, job.request.script)
    artifact.details["quantization"] = f"torch.ao dynamic INT8 ({'/'.join(q.modules)}), {artifact.method}"
    artifact.method = f"int8 dynamic + {artifact.method}"
    _log.info(f"[{job.model_name}] quantized TorchScript runs on CPU only: instance group KIND_CPU")
    return artifact
