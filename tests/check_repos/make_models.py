"""Regenerate the tiny model files of the ``tritonize check`` test repositories.

    .venv/bin/python tests/check_repos/make_models.py

Every file is a few hundred bytes and comes out the same on every run (fixed seed, fixed opset, fixed IR
version). Every file is one the default target (Triton 24.10: ONNX Runtime 1.19.2, PyTorch 2.5) can read, so each
case tests only its own mistake, except the three cases that plant a file too new for it (onnx_ir_too_new,
onnx_opset_too_new, torchscript_too_new). The config.pbtxt and expected.txt files beside them are written by hand.
"""

from __future__ import annotations

import functools
import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
OPSET = 17
IR_VERSION = 8  # what torch.onnx.export writes for opset 17 (onnx.helper.make_model would stamp its own newest)
TOO_NEW = {"ir_version": 14, "opset": 22, "torchscript": 11}  # one above Triton 24.10's limits (14: onnx 1.23's)


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


def _onnx(graph: onnx.GraphProto, opset: int = OPSET, ir_version: int = IR_VERSION) -> bytes:
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tritonize", ir_version=ir_version)
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


@functools.cache
def relu_onnx(opset: int = OPSET, ir_version: int = IR_VERSION) -> bytes:
    """output = Relu(input), [batch, 4]."""
    io_ = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in ("input", "output")]
    return _onnx(helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", io_[:1], io_[1:]),
                 opset, ir_version)


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


class _Upper(torch.nn.Module):
    def forward(self, text: list[str]) -> list[str]:
        return [t.upper() for t in text]


@functools.cache
def upper_ts() -> bytes:
    """List[str] -> List[str]: scripted, since tracing cannot take strings."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_Upper()), buffer)
    return buffer.getvalue()


def with_file_format(archive: bytes, version: int) -> bytes:
    """The same TorchScript archive recording another file format version (what torch.jit.load checks first)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith(("/.data/version", "/version")):
                data = f"{version}\n".encode()
            target.writestr(info, data)
    return out.getvalue()


# file (relative to this directory) -> what to write there
FILES: dict[str, Callable[[], bytes]] = {
    "valid/classifier_onnx/1/model.onnx/model.onnx": linear_onnx,  # the directory form of model.onnx
    "valid/classifier_onnx/warmup/input": lambda: bytes(16),  # four float32 zeros
    "valid/classifier_ts/1/softmax.pt": softmax_ts,
    "config_autocomplete/m/1/model.onnx": linear_onnx,
    "model_unreadable/m/1/model.onnx": lambda: b"this is not an ONNX protobuf\n",
    "onnx_input_missing/m/1/model.onnx": add_onnx,
    "onnx_input_count/m/1/model.onnx": add_onnx,
    "onnx_optional_input/m/1/model.onnx": add_onnx,
    "onnx_ragged_shape/m/1/model.onnx": linear_onnx,
    "torch_batched_strings/m/1/model.pt": upper_ts,
    "fixed_batch_dim/m/1/model.onnx": lambda: linear_onnx(dynamic_batch=False),
    "trt_int8_qdq_with_table/m/1/model.onnx": qdq_onnx,
    "onnx_ir_too_new/m/1/model.onnx": lambda: relu_onnx(ir_version=TOO_NEW["ir_version"]),
    "onnx_opset_too_new/m/1/model.onnx": lambda: relu_onnx(opset=TOO_NEW["opset"], ir_version=10),
    "torchscript_too_new/m/1/model.pt": lambda: with_file_format(pair_ts(), TOO_NEW["torchscript"]),
    **{f"{case}/m/1/model.onnx": linear_onnx for case in (
        "backend_typo", "platform_unknown", "backend_platform_mismatch", "onnx_unknown_tensor", "onnx_dtype",
        "batch_dim_in_dims", "rank_mismatch", "dim_mismatch", "max_batch_size_autofill", "trt_precision_mode",
        "trt_int8_no_calibration", "onnx_control_input")},
    **{f"{case}/m/1/model.pt": pair_ts for case in (
        "config_missing", "torch_output_name", "torch_input_name", "torch_mixed_naming",
        "torch_input_count", "torch_sequence_naming", "torch_control_dtype")},
}


def main() -> None:
    for rel, make in FILES.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    print(f"wrote {len(FILES)} files under {HERE}")


if __name__ == "__main__":
    main()
