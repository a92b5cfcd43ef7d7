"""Regenerate the tiny model files of the ``tritonize check`` test repositories.

    .venv/bin/python tests/check_repos/make_models.py

Every file is a few hundred bytes and comes out the same on every run (fixed seed, fixed opset). The
config.pbtxt and expected.txt files beside them are written by hand.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
OPSET = 17


@functools.cache  # one build per kind: every copy of a model is byte-identical
def linear_onnx(dynamic_batch: bool = True) -> bytes:
    """Linear(4, 3): input [batch, 4] -> logits [batch, 3]; batch fixed at 2 when not dynamic."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).eval()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(model, (torch.zeros(2, 4),), buffer, input_names=["input"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def _onnx(graph: onnx.GraphProto) -> bytes:
    opset = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opset, producer_name="tritonize")
    onnx.checker.check_model(model)
    return model.SerializeToString()


@functools.cache
def add_onnx() -> bytes:
    """Two inputs: sum = a + b, all [batch, 4]."""
    tensors = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in ("a", "b", "sum")]
    return _onnx(helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "add", tensors[:2],
                                   tensors[2:]))


@functools.cache
def qdq_onnx() -> bytes:
    """A Q/DQ (already quantized) graph: output = Relu(DequantizeLinear(QuantizeLinear(input)))."""
    nodes = [helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
             helper.make_node("Relu", ["dq"], ["output"])]
    constants = [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05]),
                 helper.make_tensor("zero", TensorProto.INT8, [], [0])]
    io_ = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in ("input", "output")]
    return _onnx(helper.make_graph(nodes, "qdq", io_[:1], io_[1:], initializer=constants))


class _Softmax(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


class _Pair(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a * b


def _torchscript(module: torch.nn.Module, *example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), example), buffer)
    return buffer.getvalue()


@functools.cache
def softmax_ts() -> bytes:
    return _torchscript(_Softmax(), torch.zeros(2, 3))


@functools.cache
def pair_ts() -> bytes:
    return _torchscript(_Pair(), torch.zeros(2, 4), torch.zeros(2, 4))


# file (relative to this directory) -> what to write there
FILES: dict[str, Callable[[], bytes]] = {
    "valid/classifier_onnx/1/model.onnx/model.onnx": linear_onnx,  # the directory form of model.onnx
    "valid/classifier_onnx/warmup/input": lambda: bytes(16),  # four float32 zeros
    "valid/classifier_ts/1/softmax.pt": softmax_ts,
    "config_autocomplete/m/1/model.onnx": linear_onnx,
    "model_unreadable/m/1/model.onnx": lambda: b"this is not an ONNX protobuf\n",
    "onnx_input_missing/m/1/model.onnx": add_onnx,
    "fixed_batch_dim/m/1/model.onnx": lambda: linear_onnx(dynamic_batch=False),
    "trt_int8_qdq_with_table/m/1/model.onnx": qdq_onnx,
    **{f"{case}/m/1/model.onnx": linear_onnx for case in (
        "backend_typo", "platform_unknown", "backend_platform_mismatch", "onnx_unknown_tensor", "onnx_dtype",
        "batch_dim_in_dims", "rank_mismatch", "dim_mismatch", "max_batch_size_autofill", "trt_precision_mode",
        "trt_int8_no_calibration")},
    **{f"{case}/m/1/model.pt": pair_ts for case in (
        "config_missing", "torch_output_name", "torch_input_name", "torch_mixed_naming",
        "torch_input_count")},
}


def main() -> None:
    for rel, make in FILES.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    print(f"wrote {len(FILES)} files under {HERE}")


if __name__ == "__main__":
    main()
