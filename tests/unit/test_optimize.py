"""INT8 and pruning on the two example models: measured, printed, and gated (passing and refusing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tritonize.generator.build import BuiltModel, build
from tritonize.generator.config_spec import InstanceGroup, Optimization, TensorRTAccelerator
from tritonize.generator.errors import SpecError
from tritonize.generator.optimize import AccuracyError
from tritonize.generator.quantization import Quantization
from tritonize.generator.render import parse_config
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.tables import optimization_table
from tritonize.generator.writer import MANIFEST

DIGITS = "tritonize.generator.examples.digits:build_digits_cnn"
SEQUENCE = "tritonize.generator.examples.sequence:build_sequence_classifier"
# per-tensor throughout: the measurements of fixed variants (the per-channel choice: test_int8_task.py)
STATIC = FormatOptions(quantization=Quantization("static", calibration="minmax", per_channel=False))
PER_TENSOR = FormatOptions(quantization=Quantization(per_channel=False))


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, BuiltModel]]:
    repo = tmp_path_factory.mktemp("int8")
    requests = [
        ModelRequest("digits", DIGITS, max_batch_size=64, version=1, formats=("onnx-int8", "torchscript-int8"),
                     format_options={"onnx-int8": STATIC, "torchscript-int8": PER_TENSOR},
                     instance_group=(InstanceGroup("gpu", 1),)),
        ModelRequest("digits_pruned", DIGITS, max_batch_size=64, version=1, formats=("onnx",), prune=0.3),
        ModelRequest("sequence", SEQUENCE, max_batch_size=32, version=1, formats=("onnx-int8", "torchscript-int8"),
                     format_options={"onnx-int8": PER_TENSOR, "torchscript-int8": PER_TENSOR}),
    ]
    return repo, {b.name: b for b in build(requests, repo)}


def test_every_optimized_artifact_is_measured(optimized: tuple[Path, dict[str, BuiltModel]]) -> None:
    repo, built = optimized
    assert set(built) == {"digits_onnx_int8", "digits_torchscript_int8", "digits_pruned_onnx", "sequence_onnx_int8",
                          "sequence_torchscript_int8"}
    for name, model in built.items():
        report = model.optimization
        assert report is not None, name
        assert report.accuracy_fp32 is not None and report.accuracy is not None  # labeled evaluation sets
        assert report.accuracy_drop_points is not None and report.accuracy_drop_points <= 1.0  # the default budget
        assert report.agreement >= 0.98
        assert set(report.speedup) == {"1", str(model.report.batch_sizes and (64 if "digits" in name else 32))}
        assert all(x > 0 for x in report.speedup.values())
        manifest = json.loads((repo / name / MANIFEST).read_text())["versions"]["1"]
        assert manifest["optimization"]["accuracy_drop_points"] == report.accuracy_drop_points
    ratios = {n: (m.optimization.size_ratio, m.optimization.per_channel) for n, m in built.items()
              if "int8" in n and m.optimization is not None}
    assert len(ratios) == 4 and all(r < 0.6 for r, _ in ratios.values()), ratios  # INT8 GEMM weights
    pruned = built["digits_pruned_onnx"].optimization
    assert pruned is not None and pruned.sparsity == pytest.approx(0.3, abs=0.01)
    assert pruned.gzip_size_ratio < 0.9 and pruned.size_ratio == pytest.approx(1.0, abs=0.01)
    assert any("does not make dense kernels faster" in w for w in pruned.warnings)
    assert "static INT8 (QDQ, minmax" in (built["digits_onnx_int8"].optimization or pruned).technique
    assert "of the ops with a QDQ rule" in (built["digits_onnx_int8"].optimization or pruned).technique
    assert "dynamic INT8 of MatMul/Gemm" in (built["sequence_onnx_int8"].optimization or pruned).technique
    # onnxruntime's shape inference leaves no temporary files in the working directory
    assert not Path("sym_shape_infer_temp.onnx").exists() and not list(Path.cwd().glob("*.data"))


def test_printed_table(optimized: tuple[Path, dict[str, BuiltModel]]) -> None:
    table = optimization_table(list(optimized[1].values())).text()
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["model", "technique", "judged", "by", "acc", "FP32"]
    assert len(lines) == 6 and all(" pt " in line for line in lines[1:])
    assert all(("x (gzip" in line) == ("pruned" in line) for line in lines[1:])  # compressed size: pruning's gain
    assert all("accuracy (classification)" in line for line in lines[1:])  # labeled sets: accuracy judged


def test_quantized_torchscript_is_configured_for_cpu(optimized: tuple[Path, dict[str, BuiltModel]]) -> None:
    repo, _ = optimized
    ts = parse_config((repo / "digits_torchscript_int8/config.pbtxt").read_text())
    assert [g.kind for g in ts.instance_group] == [2]  # KIND_CPU although the request said GPU
    onnx = parse_config((repo / "digits_onnx_int8/config.pbtxt").read_text())
    assert [g.kind for g in onnx.instance_group] == [1]  # ONNX INT8 keeps the GPU group
    assert (repo / "digits_onnx_int8/configs/cpu.pbtxt").is_file()


def test_gate_refuses_with_a_zero_budget(tmp_path: Path) -> None:
    from onnxruntime.quantization.registry import QDQRegistry

    # Q/DQ around every op onnxruntime can quantize, per-channel weight scales: 0.28 points lost on the digits CNN
    # (scikit-learn 1.9.1, onnxruntime 1.32; per-tensor scales lost 0.56 before and gain 0.28 points there now)
    everything = Quantization("static", op_types=tuple(sorted(QDQRegistry)), per_channel=True)
    strict = FormatOptions(quantization=everything, accuracy_budget=0.0)
    with pytest.raises(AccuracyError, match=r"digits_onnx_int8 accuracy .* drop 0\.\d+ points > budget 0 .*"
                                            r"calibrate on representative data.*accuracy_budget"):
        build([ModelRequest("digits", DIGITS, max_batch_size=64, formats=("onnx-int8",),
                            format_options={"onnx-int8": strict})], tmp_path / "repo")
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_gate_refuses_a_bad_calibration(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.npz"
    np.savez(zeros, image=np.zeros((64, 1, 8, 8), np.float32))  # activation ranges of blank images
    bad = FormatOptions(quantization=Quantization("static", calibration_data=str(zeros)))
    with pytest.raises(AccuracyError, match=r"accuracy gate: digits_onnx_int8 .* > budget 1"):
        build([ModelRequest("digits", DIGITS, max_batch_size=64, formats=("onnx-int8",),
                            format_options={"onnx-int8": bad})], tmp_path / "repo")


def test_gate_refuses_heavy_pruning(tmp_path: Path) -> None:
    with pytest.raises(AccuracyError, match=r"digits_onnx accuracy .* prune less than 0\.6"):
        build([ModelRequest("digits", DIGITS, max_batch_size=64, formats=("onnx",), prune=0.6)], tmp_path / "r")


@pytest.mark.parametrize(("request_kwargs", "field"), [
    (dict(formats=("onnx",), format_options={"onnx": STATIC}), "onnx.quantization"),
    (dict(formats=("onnx-int8",), format_options={"onnx-int8": FormatOptions(optimization=Optimization(
        tensorrt=TensorRTAccelerator("INT8")))}), "onnx-int8.optimization.tensorrt.precision_mode"),
    (dict(formats=("onnx-int8",), format_options={"onnx-int8": FormatOptions(
        quantization=Quantization("static"), optimization=Optimization(tensorrt=TensorRTAccelerator(
            "INT8", int8_calibration_table_name="table.flatbuffers")))}),
     "onnx-int8.optimization.tensorrt.int8_calibration_table_name"),
    (dict(formats=("onnx",), prune=1.5), "prune"),
])
def test_invalid_optimization_requests(request_kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        ModelRequest("m", "toy_models:mlp", **request_kwargs)
    assert info.value.field.startswith(field)
    with pytest.raises(SpecError, match="accuracy_budget"):
        FormatOptions(accuracy_budget=-1)


def test_torchscript_int8_needs_layers_it_can_quantize(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no Linear/LSTM/GRU layers"):
        build([ModelRequest("m", "toy_models:batch_stats_norm", max_batch_size=8,
                            formats=("torchscript-int8",))], tmp_path)


def test_tensorrt_int8_with_a_qdq_model_is_accepted() -> None:
    ModelRequest("m", "toy_models:mlp", formats=("onnx-int8",), format_options={"onnx-int8": FormatOptions(
        quantization=Quantization("static"), optimization=Optimization(tensorrt=TensorRTAccelerator("INT8")))})
