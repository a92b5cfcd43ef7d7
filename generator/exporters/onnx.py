"""``onnx``: the TorchScript-based exporter with a dynamic batch axis and the spec's variable dims, then
``onnx.checker`` (full check: strict shape inference) and an onnxruntime load; an ONNX source is copied."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tritonize.core.loader import summary
from tritonize.core.log import logger
from tritonize.core.releases import Release, ai_onnx_opset

from ..errors import ExportError
from ..runners import OnnxRunner
from . import Artifact, ExportJob
from ._torch import example_args, exportable, native_output_silenced, quiet_export

_log = logger(__name__)


def export_onnx(job: ExportJob) -> Artifact:
    """Write ``job.directory/model.onnx``."""
    import onnx

    loaded, opset, script = job.loaded, job.request.options(job.format.name).opset, job.request.script
    path = job.directory / "model.onnx"
    input_names = [i.name for i in loaded.inputs]
    output_names = [o.name for o in loaded.outputs]
    notes: list[str] = []
    if loaded.kind == "onnx":
        assert loaded.onnx_path is not None
        shutil.copyfile(loaded.onnx_path, path)
        method = "copy"
    else:
        method = "script" if script else "trace"
        module = exportable(loaded, script)
        if script:
            module = torch.jit.script(module)
        dynamic_axes = {}
        for t in loaded.inputs + loaded.outputs:
            axes = {0: "batch"} if loaded.batching else {}
            offset = 1 if loaded.batching else 0
            axes.update({i + offset: f"{t.name}_dim{i + offset}" for i, d in enumerate(t.dims) if d == -1})
            if axes:
                dynamic_axes[t.name] = axes
        try:
            with quiet_export(notes), native_output_silenced():
                torch.onnx.export(module, example_args(loaded), str(path), dynamo=False, opset_version=opset,
                                  input_names=input_names, output_names=output_names,
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        except Exception as exc:
            hint = " (try --script)" if method == "trace" else ""
            raise ExportError(f"onnx export (opset {opset}) failed: {summary(exc)}{hint}") from exc
    stamped = fit_to_target(path, job.request.target)
    try:
        onnx.checker.check_model(str(path), full_check=True)
        runner = OnnxRunner(path, input_names)
    except Exception as exc:
        raise ExportError(f"onnx model does not check/load: {summary(exc)}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}
    graph_inputs = [i.name for i in proto.graph.input if i.name not in initializers]
    for name in input_names:
        if name not in graph_inputs:
            raise ExportError(f"onnx export lost input '{name}': the exported graph does not depend on it "
                              "(does forward() leave torch, e.g. through .numpy() or .item()?)")
    details = {"opset": ai_onnx_opset(proto.opset_import), "ir_version": proto.ir_version,
               "exporter": "torch.onnx.export (TorchScript-based)" if method != "copy" else None,
               "onnx": onnx.__version__}
    if stamped != proto.ir_version:
        details["ir_version_stamped"] = stamped
    return Artifact("onnx", path, method, input_names, output_names, runner, notes, details)


def fit_to_target(path: Path, target: Release) -> int:
    """Make ``path`` a file the target release's ONNX Runtime loads, and return the IR version it was stamped with.

    Exporters and onnx stamp their own newest IR version; one above the target's is lowered to the target's when
    the model's opsets are defined at that IR version (``onnx.helper.find_min_ir_version_for``). An opset, or
    opsets needing an IR version, above the target's is an ExportError naming the limit."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = ai_onnx_opset(proto.opset_import)
    problem = None if opset is None else target.onnx_opset_problem(opset)
    if problem:
        raise ExportError(f"{path.name}: {problem}")
    stamped = int(proto.ir_version)
    problem = target.onnx_ir_problem(stamped)
    if problem:
        needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        if needed > target.onnx_ir_version:
            raise ExportError(f"{path.name}: {problem}, and its opsets need IR version {needed}")
        proto.ir_version = target.onnx_ir_version
        onnx.save(proto, str(path))
        _log.info(f"{path.name}: IR version {stamped} lowered to {target.onnx_ir_version} for Triton {target.name}")
    return stamped
