"""A repository of the Triton features real repositories use beyond the example models, each model a small graph
written here (no weights): string tensors in ONNX and TorchScript (the latter with the pytorch backend's JIT
parameters), sequence batching with every control input and implicit state, ragged batching with batch inputs
and a scattered batch output, an optional input, and a python-backend BYTES model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

_OPSET = [h.make_opsetid("", 17)]


def _onnx(path: Path, nodes: list, inputs: list, outputs: list, initializers: tuple = ()) -> None:
    graph = h.make_graph(nodes, path.parents[1].name, inputs, outputs, initializer=list(initializers))
    model = h.make_model(graph, opset_imports=_OPSET, producer_name="tritonize-tests")
    model.ir_version = 8  # what ONNX Runtime 1.19 (Triton 24.10) reads
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True)
    path.write_bytes(model.SerializeToString())


def _vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def _strings_onnx(model: Path) -> None:
    one = h.make_tensor("one", T.INT64, [], [1])
    _onnx(model / "1" / "model.onnx",
          [h.make_node("Cast", ["TEXT"], ["parsed"], to=T.INT64), h.make_node("Add", ["parsed", "one"], ["NUMBER"]),
           h.make_node("Identity", ["TEXT"], ["ECHO"])],
          [_vi("TEXT", T.STRING, ["b", 1])], [_vi("NUMBER", T.INT64, ["b", 1]), _vi("ECHO", T.STRING, ["b", 1])],
          (one,))


def _sequence_onnx(model: Path) -> None:
    """OUTPUT = running sum (the implicit state) + 10 START + 100 END + 1000 READY + CORRID * 1e4."""
    f = [h.make_node("Cast", [n], [f"{n}_f"], to=T.FLOAT) for n in ("START", "END", "READY", "CORRID")]
    consts = [h.make_tensor(f"k{k}", T.FLOAT, [], [float(k)]) for k in (10, 100, 1000, 10000)]
    nodes = [*f, h.make_node("Add", ["STATE_IN", "INPUT"], ["STATE_OUT"]),
             h.make_node("Mul", ["START_f", "k10"], ["s"]), h.make_node("Mul", ["END_f", "k100"], ["e"]),
             h.make_node("Mul", ["READY_f", "k1000"], ["r"]), h.make_node("Mul", ["CORRID_f", "k10000"], ["c"]),
             h.make_node("Sum", ["STATE_OUT", "s", "e", "r", "c"], ["OUTPUT"])]
    _onnx(model / "1" / "model.onnx", nodes,
          [_vi("INPUT", T.FLOAT, ["b", 1]), _vi("STATE_IN", T.FLOAT, ["b", 1]), _vi("START", T.INT32, ["b", 1]),
           _vi("END", T.BOOL, ["b", 1]), _vi("READY", T.FLOAT, ["b", 1]), _vi("CORRID", T.UINT64, ["b", 1])],
          [_vi("OUTPUT", T.FLOAT, ["b", 1]), _vi("STATE_OUT", T.FLOAT, ["b", 1])], consts)


def _ragged_onnx(model: Path) -> None:
    """A ragged INPUT (one flat tensor for the whole batch) with the batch inputs that describe it."""
    two = h.make_tensor("two", T.FLOAT, [], [2.0])
    axis = h.make_tensor("axis", T.INT64, [1], [1])
    nodes = [h.make_node("Mul", ["INPUT", "two"], ["DOUBLED"]),
             h.make_node("Unsqueeze", ["INDEX", "axis"], ["INDEX_OUT"]),
             h.make_node("Unsqueeze", ["COUNT", "axis"], ["COUNT_OUT"]),
             h.make_node("Identity", ["ITEM_SHAPE"], ["ITEM_OUT"]),
             h.make_node("Shape", ["MAX_SHAPE"], ["max_len"]), h.make_node("Cast", ["max_len"], ["max_f"], to=T.FLOAT),
             h.make_node("Mul", ["INDEX_OUT", "max_f"], ["MAX_OUT"])]
    _onnx(model / "1" / "model.onnx", nodes,
          [_vi("INPUT", T.FLOAT, [-1]), _vi("INDEX", T.FLOAT, [-1]), _vi("COUNT", T.INT32, [-1]),
           _vi("MAX_SHAPE", T.INT32, [-1]), _vi("ITEM_SHAPE", T.FLOAT, [-1, 1])],
          [_vi("DOUBLED", T.FLOAT, [-1]), _vi("INDEX_OUT", T.FLOAT, [-1, 1]), _vi("COUNT_OUT", T.INT32, [-1, 1]),
           _vi("ITEM_OUT", T.FLOAT, [-1, 1]), _vi("MAX_OUT", T.FLOAT, [-1, 1])], (two, axis))


def _optional_onnx(model: Path) -> None:
    """BIAS is an overridable initializer: a request may give it or leave it to the default."""
    bias = h.make_tensor("BIAS", T.FLOAT, [2], [10.0, 20.0])
    _onnx(model / "1" / "model.onnx", [h.make_node("Add", ["X", "BIAS"], ["Y"])],
          [_vi("X", T.FLOAT, [2]), _vi("BIAS", T.FLOAT, [2])], [_vi("Y", T.FLOAT, [2])], (bias,))


def _torchscript(path: Path) -> None:
    import torch

    class Upper(torch.nn.Module):
        def forward(self, text: list[str]) -> tuple[list[str], torch.Tensor]:
            return [t.upper() + "!" for t in text], torch.tensor([len(t) for t in text], dtype=torch.int64)

    path.parent.mkdir(parents=True)
    torch.jit.save(torch.jit.script(Upper()), str(path))


PYTHON_MODEL = '''import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text").as_numpy()
            size = np.array([[len(t)] for t in text.reshape(-1)], np.int64).reshape(text.shape)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("echo", text), pb_utils.Tensor("size", size)]))
        return out
'''

CONFIGS = {
    "strings_onnx": '''backend: "onnxruntime"
max_batch_size: 4
dynamic_batching { max_queue_delay_microseconds: 300000 }
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "NUMBER" data_type: TYPE_INT64 dims: [ 1 ] }, { name: "ECHO" data_type: TYPE_STRING dims: [ 1 ] } ]
''',
    "strings_torchscript": '''backend: "pytorch"
max_batch_size: 0
parameters [ { key: "ENABLE_JIT_PROFILING" value { string_value: "false" } },
             { key: "ENABLE_JIT_EXECUTOR" value { string_value: "off" } },
             { key: "ENABLE_TENSOR_FUSER" value { string_value: "0" } },
             { key: "INFERENCE_MODE" value { string_value: "FALSE" } } ]
input [ { name: "text" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "UPPER__0" data_type: TYPE_STRING dims: [ -1 ] }, { name: "LENGTHS__1" data_type: TYPE_INT64 dims: [ -1 ] } ]
''',
    "strings_torchscript_batched": '''backend: "pytorch"
max_batch_size: 4
dynamic_batching { max_queue_delay_microseconds: 300000 }
input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [ ] } } ]
output [ { name: "UPPER__0" data_type: TYPE_STRING dims: [ 1 ] reshape { shape: [ ] } },
         { name: "LENGTHS__1" data_type: TYPE_INT64 dims: [ 1 ] reshape { shape: [ ] } } ]
''',
    "sequence_onnx": '''backend: "onnxruntime"
max_batch_size: 2
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 10000000
  oldest { max_candidate_sequences: 4 preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 100000 }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END bool_false_true: [ false, true ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY fp32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ]
            initial_state { name: "zero" data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } ]
}
''',
    "ragged_onnx": '''backend: "onnxruntime"
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 300000 }
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true } ]
batch_input [
  { kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX" data_type: TYPE_FP32 source_input: "INPUT" },
  { kind: BATCH_ELEMENT_COUNT target_name: "COUNT" data_type: TYPE_INT32 source_input: "INPUT" },
  { kind: BATCH_MAX_ELEMENT_COUNT_AS_SHAPE target_name: "MAX_SHAPE" data_type: TYPE_INT32 source_input: "INPUT" },
  { kind: BATCH_ITEM_SHAPE target_name: "ITEM_SHAPE" data_type: TYPE_FP32 source_input: "INPUT" }
]
output [ { name: "DOUBLED" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "INDEX_OUT" data_type: TYPE_FP32 dims: [ 1 ] },
         { name: "COUNT_OUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "ITEM_OUT" data_type: TYPE_FP32 dims: [ 1 ] },
         { name: "MAX_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
batch_output [ { target_name: "DOUBLED" kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "INPUT" } ]
''',
    "optional_onnx": '''backend: "onnxruntime"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "BIAS" data_type: TYPE_FP32 dims: [ 2 ] optional: true } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
''',
    "python_bytes": '''backend: "python"
max_batch_size: 4
dynamic_batching { max_queue_delay_microseconds: 300000 }
input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "echo" data_type: TYPE_STRING dims: [ 1 ] }, { name: "size" data_type: TYPE_INT64 dims: [ 1 ] } ]
''',
}


def write_feature_repo(repo: Path) -> Path:
    """Write every model of ``CONFIGS`` under ``repo`` (which must not exist); returns ``repo``."""
    builders = {"strings_onnx": _strings_onnx, "sequence_onnx": _sequence_onnx, "ragged_onnx": _ragged_onnx,
                "optional_onnx": _optional_onnx}
    for name, config in CONFIGS.items():
        (repo / name).mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config)
        if name in builders:
            builders[name](repo / name)
        elif name.startswith("strings_torchscript"):
            _torchscript(repo / name / "1" / "model.pt")
        else:
            (repo / name / "1").mkdir()
            (repo / name / "1" / "model.py").write_text(PYTHON_MODEL)
    return repo


def strings(*values: str | bytes) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=object)
