"""The ONNX file rules (onnxruntime_backend ``onnxruntime.cc``: ValidateInputs, ValidateOutputs,
CompareDimsSupported, auto-complete). ``onnx`` is imported only when a model file is read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from tritonclient.grpc import model_config_pb2 as pb

from ..datatypes import from_numpy
from ..errors import SpecError
from ..loader import summary
from ..releases import ai_onnx_opset
from .codes import Hit
from .model import ModelView, Tensor, fmt_list, fmt_shape, trt_accelerators
from .sequence import control_tensors

if TYPE_CHECKING:
    import onnx

_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# what auto-complete sets max_batch_size to: core r24.10 backend_model.cc SetBackendConfigDefaults gives every
# backend default-max-batch-size 4; onnxruntime.cc AutoCompleteMaxBatch applies it
_AUTOFILL_MAX_BATCH_SIZE = 4


class _OnnxGraph(NamedTuple):
    inputs: dict[str, tuple[str, list[int] | None]]  # name -> (TYPE_* name, dims: -1 dynamic, None unknown)
    outputs: dict[str, tuple[str, list[int] | None]]
    ops: frozenset[str]
    initializers: dict[str, tuple[str, list[int] | None]]  # overridable: graph inputs with an initializer


def _onnx_graph(model: onnx.ModelProto) -> _OnnxGraph:
    graph = model.graph
    initializers = {init.name for init in graph.initializer}

    def info(vi: onnx.ValueInfoProto) -> tuple[str, list[int] | None]:
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return _onnx_type(tensor.elem_type), dims if tensor.HasField("shape") else None

    return _OnnxGraph({vi.name: info(vi) for vi in graph.input if vi.name not in initializers},
                      {vi.name: info(vi) for vi in graph.output}, frozenset(n.op_type for n in graph.node),
                      {vi.name: info(vi) for vi in graph.input if vi.name in initializers})


def _onnx_type(elem_type: int) -> str:
    import onnx

    try:
        return from_numpy(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).config
    except (KeyError, TypeError, ValueError, SpecError):
        return f"unsupported {onnx.TensorProto.DataType.Name(elem_type)}"


def check_onnx(m: ModelView) -> Iterator[Hit]:
    """The rules for each model file of an onnxruntime_onnx model (the registry's validator).

    Without the onnx package it raises ModuleNotFoundError before reading a file: check reports that as
    reader-missing, not as an unreadable file."""
    artifacts = m.artifacts()
    if not artifacts:
        return
    import onnx  # outside the try below

    for version, path in artifacts:
        try:
            proto = onnx.load(str(path), load_external_data=False)
            graph = _onnx_graph(proto)
        except Exception as exc:  # a user file that does not parse is a finding, not a crash
            yield "model-unreadable", (f"version {version} '{m.model_filename}' is not readable ONNX: "
                                       f"{summary(exc)}")
            continue
        yield from _onnx_target(m, version, proto)
        yield from _onnx_names(m, graph)
        m_loaded = _as_autocompleted(m, graph)  # what the backend validates, after its auto-complete
        yield from _onnx_controls(m_loaded, graph)
        yield from _onnx_input_count(m, graph)
        yield from _onnx_optional_ragged(m_loaded, graph)
        # shapes the backend does not compare: ragged inputs (above) and scattered batch outputs
        unshaped = ({t.name for t in m.cfg.input if t.allow_ragged_batch}
                    | {n for b in m.cfg.batch_output for n in b.target_name})
        for kind, tensors, known in _onnx_pairs(m, graph):
            for t in tensors:
                if t.name in known and t.name not in unshaped:
                    yield from _onnx_tensor(m_loaded, f"{kind} '{t.name}'", t, *known[t.name])
        yield from _onnx_autofill(m, graph)
        yield from _onnx_int8(m, graph)


def _onnx_target(m: ModelView, version: int, model: onnx.ModelProto) -> Iterator[Hit]:
    """What the target release's ONNX Runtime refuses before it looks at the graph: an IR version (model.cc) or
    an ai.onnx opset (ValidateOpsetForDomain) newer than it knows."""
    opset = ai_onnx_opset(model.opset_import)
    for code, problem in (("onnx-ir-too-new", m.target.onnx_ir_problem(model.ir_version)),
                          ("onnx-opset-too-new", None if opset is None else m.target.onnx_opset_problem(opset))):
        if problem:
            yield code, f"version {version} '{m.model_filename}': {problem}"


def _onnx_pairs(
    m: ModelView, graph: _OnnxGraph
) -> tuple[tuple[str, Iterable[Tensor], dict[str, tuple[str, list[int] | None]]], ...]:
    """(kind, configured tensors, graph tensors) for inputs, then outputs. A request may give an overridable
    initializer as an input (onnxruntime.cc ValidateInputs merges them into the inputs)."""
    return ("input", m.cfg.input, {**graph.inputs, **graph.initializers}), ("output", m.cfg.output, graph.outputs)


def _onnx_optional_ragged(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    """onnxruntime.cc ValidateInputs: optional inputs only without batching and only as initializers (the input
    count excludes every optional input), ragged inputs only of model shape [-1] and never optional."""
    for t in m.cfg.input:
        label = f"input '{t.name}'"
        if t.optional and m.mbs != 0:
            yield "onnx-optional-input", (f"{label} is optional but max_batch_size is {m.mbs}: the backend refuses "
                                          "optional inputs for models that support batching")
        elif t.optional and t.allow_ragged_batch:
            yield "onnx-optional-input", f"{label} is optional and allow_ragged_batch: the backend refuses both"
        elif t.optional and t.name in graph.inputs:
            yield "onnx-optional-input", (
                f"{label} is optional but a required graph input (no initializer): the backend counts optional "
                f"inputs as initializers and refuses ('configuration expects {len(graph.inputs) - 1} inputs, model "
                f"provides {len(graph.inputs)}'); give it a default initializer or drop 'optional'")
        if t.allow_ragged_batch and t.name in graph.inputs and graph.inputs[t.name][1] not in (None, [-1]):
            yield "onnx-ragged-shape", (f"{label} has allow_ragged_batch: the model input must have shape [-1] "
                                        f"(the whole batch, flat), it has {fmt_shape(graph.inputs[t.name][1] or [])}")


def _onnx_names(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    for kind, tensors, known in _onnx_pairs(m, graph):
        for t in tensors:
            if t.name and t.name not in known:
                yield "onnx-unknown-tensor", (f"{kind} '{t.name}' is not in the ONNX graph; its {kind}s are: "
                                              f"{fmt_list(known)}")
    if not m.cfg.input:
        return  # the backend auto-completes the inputs (see _onnx_autofill)
    seq = m.cfg.sequence_batching
    listed = ({t.name for t in m.cfg.input} | {c.name for c in seq.control_input}
              | {s.input_name for s in seq.state} | {n for b in m.cfg.batch_input for n in b.target_name})
    for name in sorted(set(graph.inputs) - listed):
        yield "onnx-input-missing", (f"ONNX graph input '{name}' is not in the configuration "
                                     f"({len(m.cfg.input)} configured inputs, {len(graph.inputs)} in the "
                                     "model): the backend refuses to load")


def _onnx_controls(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    """onnxruntime r24.10 onnxruntime.cc ValidateBooleanSequenceControl / ValidateTypedSequenceControl: each
    control tensor is a graph input of shape [1] (after the batch dimension) in the control's data type."""
    for kind, (name, dtype) in control_tensors(m.cfg).items():
        label = f"sequence control '{name}' ({kind})"
        if name and name not in graph.inputs:
            yield "onnx-control-input", (f"{label} is not an input of the ONNX graph ({fmt_list(graph.inputs)}): "
                                         "the backend refuses to load")
            continue
        model_type, dims = graph.inputs.get(name, (dtype, None))
        if dims is not None and (dims[1:] if m.mbs > 0 else dims) != [1]:
            yield "onnx-control-input", (f"{label} has model shape {fmt_shape(dims)}: expected [1] after the batch "
                                         f"dimension (max_batch_size {m.mbs})")
        elif dtype != "TYPE_INVALID" and model_type != dtype:  # TYPE_INVALID: a sequence-control finding
            yield "onnx-control-input", f"{label} is {dtype} in the configuration but {model_type} in the model"


def _onnx_input_count(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    """onnxruntime r24.10 onnxruntime.cc ModelInstanceState / ValidateInputs: the graph has exactly one input per
    configured input (optional ones excepted), batch_input, control kind and state. Reported where the names
    already agree (a name the graph lacks, or one it has and the configuration does not, is reported above), so
    it is a name given twice: a batch_input target_name, control or state named like an input, or a second
    target_name in one batch_input."""
    if not m.cfg.input and not m.cfg.batch_input:
        return  # inputs left to auto-complete: config-autocomplete
    inputs = [t.name for t in m.cfg.input if not t.optional]
    controls = [name for name, _ in control_tensors(m.cfg).values()]
    states = [s.input_name for s in m.cfg.sequence_batching.state]
    targets = [n for b in m.cfg.batch_input for n in b.target_name]
    if {*inputs, *controls, *states, *targets} != set(graph.inputs):
        return
    expected = len(inputs) + len(m.cfg.batch_input) + len(controls) + len(states)
    if expected != len(graph.inputs):
        parts = zip((len(inputs), len(m.cfg.batch_input), len(controls), len(states)),
                    ("inputs", "batch_input", "control kinds", "states"), strict=True)
        counted = " + ".join(f"{n} {what}" for n, what in parts if n)
        yield "onnx-input-count", (f"the configuration accounts for {expected} model inputs ({counted}) but the "
                                   f"ONNX graph has {len(graph.inputs)} ({fmt_list(graph.inputs)}): the backend "
                                   "refuses to load; a name is given twice")


def _as_autocompleted(m: ModelView, graph: _OnnxGraph) -> ModelView:
    """The model with the max_batch_size auto-complete gives it, if it changes it (see _onnx_autofill)."""
    if not (m.autocomplete and _autocompletes(m) and m.mbs == 0 and not _unbatchable(graph)):
        return m
    cfg = pb.ModelConfig()
    cfg.CopyFrom(m.cfg)
    cfg.max_batch_size = _AUTOFILL_MAX_BATCH_SIZE
    return replace(m, cfg=cfg)


def _autocompletes(m: ModelView) -> bool:
    """onnxruntime.cc AutoCompleteConfig runs unless inputs (batch inputs count) and outputs are listed."""
    return not ((m.cfg.input or m.cfg.batch_input) and m.cfg.output)


def _unbatchable(graph: _OnnxGraph) -> list[str]:
    """The model tensors without a dynamic first dimension (onnxruntime.cc AutoCompleteMaxBatch)."""
    shapes = {name: dims for name, (_, dims) in (*graph.inputs.items(), *graph.outputs.items())}
    return sorted(name for name, dims in shapes.items() if not dims or dims[0] != -1)


def _onnx_tensor(
    m: ModelView, label: str, t: Tensor, dtype: str, model_dims: list[int] | None
) -> Iterator[Hit]:
    configured = pb.DataType.Name(t.data_type)
    if t.data_type != pb.TYPE_INVALID and configured != dtype:
        yield "onnx-dtype", f"{label} has data_type {configured} but the model provides {dtype}"
    if model_dims is None or not t.dims:
        return
    dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
    if not model_dims:  # a scalar in the model: every configured dimension must be 1
        if any(d != 1 for d in dims):
            yield "dim-mismatch", f"{label} is a scalar in the model; the configuration may only give 1s"
        return
    if m.mbs > 0 and model_dims[0] != -1:
        yield "fixed-batch-dim", (
            f"{label}: max_batch_size is {m.mbs} but the model's first dimension is fixed at {model_dims[0]} "
            f"(model shape {fmt_shape(model_dims)}); to batch, the first dimension must be -1: re-export with a "
            "dynamic batch axis (server#2387) or set max_batch_size: 0 and give the full shape")
        return
    full = [-1, *dims] if m.mbs > 0 else dims
    if len(full) != len(model_dims):
        yield _rank_hit(m, label, dims, full, model_dims)
        return
    for i, (want, have) in enumerate(zip(full, model_dims, strict=True)):
        if have != -1 and want != have:
            yield "dim-mismatch", (f"{label}: configuration shape {fmt_shape(full)} differs from the model "
                                   f"shape {fmt_shape(model_dims)} at dimension {i} (config {want}, model "
                                   f"{have}); a fixed model dimension must be given exactly")
            return


def _rank_hit(m: ModelView, label: str, dims: list[int], full: list[int], model_dims: list[int]) -> Hit:
    if m.mbs > 0 and len(dims) == len(model_dims):
        return "batch-dim-in-dims", (
            f"{label}: dims {fmt_shape(dims)} include the batch dimension; with max_batch_size {m.mbs} Triton "
            f"prepends it (full shape {fmt_shape(full)}) but the model shape is {fmt_shape(model_dims)}: use dims "
            f"{fmt_shape(model_dims[1:])} (server#1545, server#6529)")
    hint = ""
    if m.mbs == 0 and len(dims) + 1 == len(model_dims) and model_dims[0] == -1:
        hint = "; max_batch_size is 0, so dims are the full shape (or set max_batch_size > 0 to batch)"
    return "rank-mismatch", (f"{label}: the model expects {len(model_dims)} dimensions {fmt_shape(model_dims)} "
                             f"but the configuration gives {len(full)} {fmt_shape(full)}{hint}")


def _onnx_autofill(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    """onnxruntime r24.10 onnxruntime.cc AutoCompleteConfig / AutoCompleteMaxBatch / AutoCompleteIO: with
    auto-complete on it replaces an empty input or output list with the model's (never single fields of a
    listed tensor) and, when every model tensor can batch, sets max_batch_size 0 to 4."""
    if not _autocompletes(m):
        return  # the backend skips auto-complete when both are listed (onnxruntime_backend#113)
    missing = "outputs" if m.cfg.input or m.cfg.batch_input else "inputs"
    if not m.autocomplete and missing == "inputs":  # ValidateInputs: "configuration expects 0 inputs"
        yield "config-autocomplete", ("the configuration lists no inputs and auto-complete is off "
                                      "(--disable-auto-complete-config): the backend refuses it; list them")
    elif not m.autocomplete:  # ValidateOutputs checks only the outputs listed
        yield "outputs-missing", ("the configuration lists no outputs and auto-complete is off "
                                  "(--disable-auto-complete-config): Triton loads the model without outputs; list them")
    if not m.autocomplete:
        return
    yield "config-autocomplete", (f"the configuration lists no {missing}: the onnxruntime backend fills them "
                                  "in from the model, never with --disable-auto-complete-config; list them")
    fixed = _unbatchable(graph)
    if m.mbs > 0 and fixed:
        yield "fixed-batch-dim", (f"max_batch_size is {m.mbs} but model tensor '{fixed[0]}' has no dynamic "
                                  "first dimension: auto-complete fails ('model does not support batching')")
    elif m.mbs == 0 and not fixed:
        yield "max-batch-size-autofill", (
            "max_batch_size is 0 or omitted and every model tensor has a dynamic first dimension: "
            "auto-complete sets max_batch_size to 4 and turns on dynamic batching, so dims lose their first "
            "dimension; write max_batch_size explicitly")


def _onnx_int8(m: ModelView, graph: _OnnxGraph) -> Iterator[Hit]:
    for acc in trt_accelerators(m.cfg):
        if acc.parameters.get("precision_mode") != "INT8":
            continue
        table = acc.parameters.get("int8_calibration_table_name")
        has_qdq = bool(graph.ops & _QDQ_OPS)
        if not has_qdq and not table:
            yield "trt-int8-calibration", ("tensorrt precision_mode INT8 needs QuantizeLinear/"
                                           "DequantizeLinear nodes or int8_calibration_table_name; the "
                                           "model has neither")
        elif has_qdq and table:
            yield "trt-int8-calibration", (f"int8_calibration_table_name '{table}' is set but the model has "
                                           "Q/DQ nodes: TensorRT refuses a calibration table for a Q/DQ "
                                           "model and session creation fails; remove the table")
