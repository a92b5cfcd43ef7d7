"""Ragged batching: what Triton core checks in ``batch_input`` and ``batch_output`` for every backend
(core r24.10 model_config_utils.cc ValidateBatchIO, run by ValidateModelIOConfig at load: errors). The
backends' own checks of ragged inputs are the model file rules (onnx.py, torchscript.py)."""

from __future__ import annotations

from collections.abc import Iterator

from tritonclient.grpc import model_config_pb2 as pb

from .codes import Hit
from .model import ModelView, fmt_list

# ValidateBatchIO: the data types a batch input may have (every one of its six kinds takes one source input)
BATCH_INPUT_TYPES = ("TYPE_INT32", "TYPE_FP32")


def check_batch_io(m: ModelView) -> Iterator[Hit]:
    inputs = {t.name for t in m.cfg.input}
    for i, b in enumerate(m.cfg.batch_input):
        label = f"batch_input[{i}] {pb.BatchInput.Kind.Name(b.kind)} (target {fmt_list(b.target_name)})"
        yield from _sources("batch-input", label, list(b.source_input), inputs)
        dtype = pb.DataType.Name(b.data_type)
        if dtype not in BATCH_INPUT_TYPES:
            yield "batch-input", f"{label} data_type {dtype}: expected {' or '.join(BATCH_INPUT_TYPES)}"
    # outputs left to auto-complete are checked against what it fills in, after the backend ran
    outputs = {t.name for t in m.cfg.output} if m.cfg.output or not m.autocomplete else None
    for i, bo in enumerate(m.cfg.batch_output):
        label = f"batch_output[{i}] {pb.BatchOutput.Kind.Name(bo.kind)}"
        yield from _sources("batch-output", label, list(bo.source_input), inputs)
        seen: set[str] = set()
        for name in bo.target_name:
            if outputs is not None and name not in outputs:
                yield "batch-output", (f"{label} target_name '{name}' is not a configured output "
                                       f"({fmt_list(outputs)})")
            elif name in seen:
                yield "batch-output", f"{label} target_name '{name}' is given twice: expected once"
            seen.add(name)


def _sources(code: str, label: str, sources: list[str], inputs: set[str]) -> Iterator[Hit]:
    if len(sources) != 1:
        yield code, f"{label} has {len(sources)} source_input ({fmt_list(sources)}): expected exactly 1"
    for name in sources:
        if name not in inputs:
            yield code, f"{label} source_input '{name}' is not a configured input ({fmt_list(inputs)})"
