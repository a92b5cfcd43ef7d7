"""``onnx``: torch.onnx.export with a dynamic batch axis and the spec's variable dims — TorchScript-based
(``exporter = "torchscript"``, the default) or torch.export-based (``exporter = "dynamo"``) — then
``onnx.checker`` (full check: strict shape inference) and an onnxruntime load; an ONNX source is copied.

The numbers the default was picked from: ``benchmarks/results/onnx_exporters.md``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from tritonize.core.loader import summary
from tritonize.core.log import logger
from tritonize.core.releases import Release, ai_onnx_opset

from ..errors import ExportError
from ..runners import OnnxRunner
from ..source import LoadedModel
from . import Artifact, ExportJob
from ._torch import example_args, exportable, native_output_silenced, quiet_export

_log = logger(__name__)
EXPORTERS = {"torchscript": "torch.onnx.export (TorchScript-based)",
             "dynamo": "torch.onnx.export (torch.export-based, dynamo)"}
DYNAMO_MIN_OPSET = 18  # the dynamo exporter's own opset; below it, onnx's version converter fails on common ops


def export_onnx(job: ExportJob) -> Artifact:
    """Write ``job.directory/model.onnx``."""
    import onnx

    loaded, script = job.loaded, job.request.script
    opset, exporter = job.request.options(job.format.name).opset, job.request.options(job.format.name).exporter
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
        if exporter == "dynamo":
            method = "torch.export"
            _export_dynamo(module, loaded, path, opset, input_names, output_names, notes)
        else:
            _export_torchscript(module, loaded, path, opset, input_names, output_names, script, notes)
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
               "exporter": EXPORTERS[exporter] if method != "copy" else None,
               "onnx": onnx.__version__}
    if stamped != proto.ir_version:
        details["ir_version_stamped"] = stamped
    return Artifact("onnx", path, method, input_names, output_names, runner, notes, details)


def _export_torchscript(module: torch.nn.Module, loaded: LoadedModel, path: Path, opset: int, input_names: list[str],
                        output_names: list[str], script: bool, notes: list[str]) -> None:
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
        hint = "" if script else " (try --script)"
        raise ExportError(f"onnx export (opset {opset}) failed: {summary(exc)}{hint}") from exc


def _export_dynamo(module: torch.nn.Module, loaded: LoadedModel, path: Path, opset: int, input_names: list[str],
                   output_names: list[str], notes: list[str]) -> int:
    """torch.export → ONNX at ``max(opset, 18)``: every variable dim (batch, -1) is ``Dim.DYNAMIC``, so dims that
    must be equal (ids and their mask) become one symbol; they are renamed after the first input axis that
    carries them. Debug metadata (stack traces with absolute paths) is dropped: the bytes do not depend on the
    checkout. One file (no external data). Returns the opset written."""
    import onnx

    used = max(opset, DYNAMO_MIN_OPSET)
    if used != opset:
        _log.info(f"{path.name}: exporter 'dynamo' writes opset {used} (asked: {opset}; it starts at "
                  f"{DYNAMO_MIN_OPSET})")
    offset = 1 if loaded.batching else 0
    variable = [[0] * offset + [i + offset for i, d in enumerate(t.dims) if d == -1] for t in loaded.inputs]
    args = example_args(loaded)
    if any(args[k].shape[axis] < 2 for k, axes in enumerate(variable) for axis in axes):
        # torch.export specializes a dim of size 0 or 1: export from a batch of 2 instead
        sample = loaded.samples.batch(2, seed=999)
        args = tuple(torch.from_numpy(sample[t.name]) for t in loaded.inputs)
    shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in axes} or None for axes in variable)
    try:
        with quiet_export(notes), native_output_silenced():
            program = torch.onnx.export(module, args, str(path), dynamo=True, opset_version=used,
                                        input_names=input_names, output_names=output_names,
                                        dynamic_shapes=shapes if any(shapes) else None, external_data=False,
                                        verbose=False)
        narrowed = _narrowed_dims(program, input_names, variable)
        proto = onnx.load(str(path))
        _name_dims(proto, variable, [t.name for t in loaded.inputs], loaded.batching)
        _drop_debug_metadata(proto.graph.node, [*proto.graph.input, *proto.graph.output, *proto.graph.value_info,
                                                *proto.graph.initializer])
        for function in proto.functions:
            _drop_debug_metadata(function.node, [])
        onnx.save(proto, str(path))
    except Exception as exc:  # torch.export, the ONNX translation, or a file over protobuf's 2 GB
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        raise ExportError(f"onnx export with exporter 'dynamo' (torch.export, opset {used}) failed: "
                          f"{summary(cause)}; the TorchScript-based exporter may work: exporter = 'torchscript'"
                          ) from exc
    if narrowed:
        raise ExportError(f"onnx export with exporter 'dynamo': torch.export limited {narrowed} (forward() "
                          "branches on that size), so the graph would be wrong outside it; the TorchScript-based "
                          "exporter may work: exporter = 'torchscript' with --script")
    return used


def _narrowed_dims(program: Any, input_names: list[str], variable: list[list[int]]) -> str | None:
    """The first variable dim that torch.export fixed or bounded (a guard on its size), as 'input x dim 1 to
    [0, 4]'; the ONNX graph keeps no such bounds."""
    exported = program.exported_program
    user = set(exported.graph_signature.user_inputs)
    placeholders = [n for n in exported.graph.nodes if n.op == "placeholder" and n.name in user]
    for name, node, axes in zip(input_names, placeholders, variable):
        shape = node.meta["val"].shape
        for axis in axes:
            dim = shape[axis]
            if isinstance(dim, int):
                return f"input {name} dim {axis} to {dim}"
            bounds = exported.range_constraints.get(dim.node.expr)
            if bounds is not None and (float(bounds.upper) != float("inf") or float(bounds.lower) > 2):
                return f"input {name} dim {axis} to [{bounds.lower}, {bounds.upper}]"
    return None


def _name_dims(proto: Any, variable: list[list[int]], names: list[str], batching: bool) -> None:
    """Rename torch.export's symbols (``s23``) as the TorchScript-based path names its axes."""
    graph_inputs = {v.name: v for v in proto.graph.input}
    rename: dict[str, str] = {}
    for name, axes in zip(names, variable):
        dims = graph_inputs[name].type.tensor_type.shape.dim if name in graph_inputs else []
        for axis in axes:
            if axis < len(dims) and dims[axis].dim_param:
                rename.setdefault(dims[axis].dim_param, "batch" if batching and axis == 0 else f"{name}_dim{axis}")
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]


def _drop_debug_metadata(nodes: Any, values: list[Any]) -> None:
    """torch.export's per-node records (stack traces with absolute paths, FX names), also in subgraphs."""
    for node in nodes:
        del node.metadata_props[:]
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs]:
                _drop_debug_metadata(sub.node, [*sub.input, *sub.output, *sub.value_info, *sub.initializer])
    for value in values:
        del value.metadata_props[:]


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
