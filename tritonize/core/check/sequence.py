"""Sequence batching rules that Triton core enforces for every backend: control inputs, the direct strategy
and implicit state. Core refuses each of these at load (errors), whatever the backend."""

from __future__ import annotations

from collections.abc import Iterator

from tritonclient.grpc import model_config_pb2 as pb

from .codes import Hit
from .model import ModelView, data_file_problem, fmt_shape

_KIND = pb.ModelSequenceBatching.Control.Kind
CORRID = "CONTROL_SEQUENCE_CORRID"
# core r24.10 model_config_utils.cc ValidateModelConfig: the data types a CORRID control may have
CORRID_TYPES = ("TYPE_UINT64", "TYPE_INT64", "TYPE_UINT32", "TYPE_INT32", "TYPE_STRING")
# a START / END / READY control's data type is the one its false/true pair is written in
# (GetBooleanSequenceControlProperties, in this order)
_FALSE_TRUE = {"int32_false_true": "TYPE_INT32", "fp32_false_true": "TYPE_FP32", "bool_false_true": "TYPE_BOOL"}


def control_tensors(cfg: pb.ModelConfig) -> dict[str, tuple[str, str]]:
    """Control kind -> (tensor name, data type) of the first control of each kind: the tensors the sequence
    batcher feeds the model, one per kind (what the backends count and validate)."""
    found: dict[str, tuple[str, str]] = {}
    for entry in cfg.sequence_batching.control_input:
        for control in entry.control:
            kind = _KIND.Name(control.kind)
            if kind == CORRID:
                dtype = pb.DataType.Name(control.data_type)
            else:
                dtype = next((t for f, t in _FALSE_TRUE.items() if getattr(control, f)), "TYPE_INVALID")
            found.setdefault(kind, (entry.name, dtype))
    return found


def check_sequence_batching(m: ModelView) -> Iterator[Hit]:
    if not m.cfg.HasField("sequence_batching"):
        return
    seq = m.cfg.sequence_batching
    yield from _controls(seq)
    # core r24.10 model_config_utils.cc ValidateModelConfig (the code accepts 0.0 although its message says (0, 1])
    util = seq.direct.minimum_slot_utilization
    if seq.HasField("direct") and not 0.0 <= util <= 1.0:
        yield "sequence-strategy", (f"sequence_batching.direct.minimum_slot_utilization {util:g} is outside "
                                    "[0, 1]: core refuses the model")
    yield from _states(m, seq)


def _controls(seq: pb.ModelSequenceBatching) -> Iterator[Hit]:
    """core r24.10 model_config_utils.cc ValidateModelConfig -> GetBooleanSequenceControlProperties (START, END,
    READY) and GetTypedSequenceControlProperties (CORRID)."""
    names: set[str] = set()
    kinds: set[str] = set()
    for i, entry in enumerate(seq.control_input):
        if not entry.name:
            yield "sequence-control", (f"sequence_batching.control_input[{i}] has no name: every control tensor "
                                       "needs one")
        elif entry.name in names:
            yield "sequence-control", (f"sequence_batching.control_input '{entry.name}' is listed twice: one "
                                       "entry per tensor (an entry may hold several controls)")
        names.add(entry.name)
        for control in entry.control:
            kind = _KIND.Name(control.kind)
            label = f"sequence_batching.control_input '{entry.name}' {kind}"
            if kind in kinds:
                yield "sequence-control", f"{label}: {kind} is already given; core allows one tensor per kind"
            kinds.add(kind)
            pairs = [f for f in _FALSE_TRUE if getattr(control, f)]
            if kind == CORRID:
                dtype = pb.DataType.Name(control.data_type)
                if pairs:
                    yield "sequence-control", f"{label} sets {pairs[0]}: a CORRID control takes data_type only"
                elif dtype not in CORRID_TYPES:
                    yield "sequence-control", (f"{label} data_type {dtype}: expected one of "
                                               f"{', '.join(CORRID_TYPES)}")
            elif len(pairs) != 1:
                got = " and ".join(pairs) or "none"
                yield "sequence-control", (f"{label} sets {got}: expected exactly one of "
                                           f"{', '.join(_FALSE_TRUE)}")
            elif len(getattr(control, pairs[0])) != 2:
                yield "sequence-control", (f"{label} {pairs[0]} has {len(getattr(control, pairs[0]))} entries: "
                                           "expected 2 ([false, true])")


def _states(m: ModelView, seq: pb.ModelSequenceBatching) -> Iterator[Hit]:
    """core r24.10 sequence_batch_scheduler.cc SequenceBatchScheduler::Create and GenerateInitialStateData."""
    seen: set[str] = set()
    for state in seq.state:
        label = f"sequence_batching.state '{state.input_name}'"
        if len(state.initial_state) > 1:
            yield "sequence-state", (f"{label} has {len(state.initial_state)} initial_state entries: expected "
                                     "at most 1")
            continue
        for init in state.initial_state:
            yield from _initial_state(m, label, state, init, seen)


def _initial_state(m: ModelView, label: str, state: pb.ModelSequenceBatching.State,
                   init: pb.ModelSequenceBatching.InitialState, seen: set[str]) -> Iterator[Hit]:
    dtype, want = pb.DataType.Name(init.data_type), pb.DataType.Name(state.data_type)
    dims, state_dims = list(init.dims), list(state.dims)
    if dtype != want:
        yield "sequence-state", f"{label} initial_state data_type {dtype} differs from the state's {want}"
    elif not init.name:
        yield "sequence-state", f"{label} initial_state has no name: core requires one"
    elif state.input_name in seen:
        yield "sequence-state", f"{label}: a second state with input_name '{state.input_name}' and an initial_state"
    elif len(dims) != len(state_dims):
        yield "sequence-state", (f"{label} initial_state dims {fmt_shape(dims)} have {len(dims)} dimensions, the "
                                 f"state's dims {fmt_shape(state_dims)} {len(state_dims)}")
    elif -1 in dims:
        yield "sequence-state", f"{label} initial_state dims {fmt_shape(dims)} must be fully specified (no -1)"
    elif any(s not in (-1, d) for d, s in zip(dims, state_dims, strict=True)):
        yield "sequence-state", (f"{label} initial_state dims {fmt_shape(dims)} differ from the state's dims "
                                 f"{fmt_shape(state_dims)}")
    else:
        yield from _initial_data(m, label, init, dims)
    seen.add(state.input_name)


def _initial_data(m: ModelView, label: str, init: pb.ModelSequenceBatching.InitialState,
                  dims: list[int]) -> Iterator[Hit]:
    source = init.WhichOneof("state_data")
    if source is None:
        yield "sequence-state", f"{label} initial_state sets neither zero_data nor data_file"
    if source != "data_file":
        return
    problem = data_file_problem(m, "initial_state", init.data_file, init.data_type, dims)
    if problem:
        yield "sequence-state", f"{label} initial_state data_file {problem[1]}"
