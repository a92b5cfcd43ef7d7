"""``torchscript-int8``: torch.ao dynamic INT8 of Linear/LSTM/GRU, then traced or scripted (CPU kernels only)."""

from __future__ import annotations

import dataclasses

from tritonize.core.log import logger

from ..accuracy import choose_per_channel
from ..optimize import quantize_torch_module
from ..quantization import Quantization
from ..runners import TorchRunner
from . import Artifact, ExportJob
from ._torch import from_callable
from .torchscript import write_torchscript

_log = logger(__name__)


def export_torchscript_int8(job: ExportJob) -> Artifact:
    from_callable(job.loaded, job.format.name)
    loaded, q = job.loaded, job.request.options(job.format.name).quantization or Quantization()
    module = loaded.module
    assert module is not None
    variants = (False, True) if q.per_channel is None else (q.per_channel,)
    modules = {pc: quantize_torch_module(module, q, pc) for pc in variants}
    chosen, choice = variants[0], None
    if len(variants) > 1:  # judged eager, before tracing: only the one kept is traced
        runners = {pc: TorchRunner(m, [i.name for i in loaded.inputs], loaded.output_keys) for pc, m in modules.items()}
        chosen, choice = choose_per_channel(job.request, job.format.name, loaded, runners)
        _log.info(f"[{job.model_name}] {choice}")
    artifact = write_torchscript(dataclasses.replace(loaded, module=modules[chosen]), job.directory, job.request.script)
    scales = ", per-channel" if chosen else ""
    artifact.details["quantization"] = f"torch.ao dynamic INT8 ({'/'.join(q.modules)}{scales}), {artifact.method}"
    if choice:
        artifact.details["per_channel_choice"] = choice
    artifact.method = f"int8 dynamic + {artifact.method}"
    _log.info(f"[{job.model_name}] quantized TorchScript runs on CPU only: instance group KIND_CPU")
    return artifact
