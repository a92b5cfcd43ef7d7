"""``onnx``: the TorchScript-based exporter with a dynamic batch axis and the spec's variable dims, then
``onnx.checker`` (full check: strict shape inference) and an onnxruntime load; an ONNX source is copied."""

from __future__ import annotations

import shutil

import torch

from tritonize.core.loader import summary

from ..errors import ExportError
from ..runners import OnnxRunner
from . import Artifact, ExportJob
from ._torch import example_args, exportable, native_output_silenced, quiet_export


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
    graph_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    details = {"opset": graph_opset, "exporter": "torch.onnx.export (TorchScript-based)" if method != "copy" else None,
               "onnx": onnx.__version__}
    return Artifact("onnx", path, method, input_names, output_names, runner, notes, details)
