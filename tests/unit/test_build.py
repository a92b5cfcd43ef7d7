"""The build pipeline on tiny models: IO inference, export, the verification gates, and the writer's rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tritonize.core.formats import Tolerance
from tritonize.generator.build import build
from tritonize.generator.config_spec import DynamicBatching
from tritonize.generator.errors import (
    ExportError,
    ModelLoadError,
    ParityError,
    RepositoryError,
    SourceError,
    SpecError,
)
from tritonize.generator.io_spec import DeclaredTensor
from tritonize.generator.render import parse_config
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.writer import MANIFEST, sha256


def request(fn: str, **overrides: object) -> ModelRequest:
    fields: dict[str, object] = dict(name=fn, source=f"toy_models:{fn}", max_batch_size=8, version=1)
    fields.update(overrides)
    return ModelRequest(**fields)  # type: ignore[arg-type]


def config(repo: Path, model: str):
    return parse_config((repo / model / "config.pbtxt").read_text())


def tree(repo: Path) -> dict[str, str]:
    return {str(p.relative_to(repo)): sha256(p) for p in sorted(repo.rglob("*")) if p.is_file()}


def test_multi_input_int_ids_variable_length(tmp_path: Path) -> None:
    results = build([request("two_heads", dynamic_batching=DynamicBatching(max_queue_delay_microseconds=100))],
                    tmp_path)
    assert [r.name for r in results] == ["two_heads_onnx", "two_heads_torchscript"]
    for model in ("two_heads_onnx", "two_heads_torchscript"):
        cfg = config(tmp_path, model)
        assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [
            ("features", 11, [4]), ("ids", 9, [-1])]  # TYPE_FP32, TYPE_INT64
        assert [list(o.dims) for o in cfg.output] == [[5], [-1]]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert [o.name for o in config(tmp_path, "two_heads_torchscript").output] == ["OUTPUT__0", "OUTPUT__1"]
    graph = onnx.load(str(tmp_path / "two_heads_onnx/1/model.onnx")).graph
    ids = next(i for i in graph.input if i.name == "ids")
    assert [d.dim_param for d in ids.type.tensor_type.shape.dim] == ["batch", "ids_dim1"]
    report = json.loads((tmp_path / "two_heads_onnx" / MANIFEST).read_text())["versions"]["1"]["verification"]
    assert report["deterministic"] and report["batch_invariance_max_abs"] is not None
    assert {o["output"] for o in report["outputs"]} == {"OUTPUT__0", "OUTPUT__1"}


def test_dict_outputs_keep_their_keys_in_onnx(tmp_path: Path) -> None:
    build([request("dict_out")], tmp_path)
    assert [o.name for o in config(tmp_path, "dict_out_onnx").output] == ["scores", "probs"]
    assert [o.name for o in config(tmp_path, "dict_out_torchscript").output] == ["OUTPUT__0", "OUTPUT__1"]


def test_scalar_per_sample_becomes_dims_1_with_empty_reshape(tmp_path: Path) -> None:
    build([request("per_sample_scalar")], tmp_path)
    for model in ("per_sample_scalar_onnx", "per_sample_scalar_torchscript"):
        cfg = config(tmp_path, model)
        for tensor in (cfg.input[0], cfg.output[0]):
            assert list(tensor.dims) == [1] and tensor.HasField("reshape") and list(tensor.reshape.shape) == []
        assert [list(w.inputs["price"].dims) for w in cfg.model_warmup] == [[1], [1]]


def test_declared_io_without_examples(tmp_path: Path) -> None:
    build([request("mlp_module_only", inputs=(DeclaredTensor("features", "float32", (4,)),), max_batch_size=0)],
          tmp_path)
    cfg = config(tmp_path, "mlp_module_only_onnx")
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [4] and list(cfg.output[0].dims) == [3]


@pytest.mark.parametrize(("overrides", "error", "words"), [
    (dict(inputs=(DeclaredTensor("features", "float32", (5,)),)), SpecError, ["inputs.features.dims", "[4]"]),
    (dict(inputs=(DeclaredTensor("features", "int64"),)), SpecError, ["inputs.features.dtype", "float32"]),
    (dict(inputs=(DeclaredTensor("pixels", "float32", (4,)),)), SpecError, ["inputs.pixels", "forward(features)"]),
    (dict(source="toy_models:missing"), SourceError, ["source", "missing"]),
    (dict(source="no_such_module:build"), SourceError, ["source", "no_such_module"]),
    (dict(source="toy_models:raises"), ModelLoadError, ["raised RuntimeError", "weights file not found"]),
    (dict(source="toy_models:not_a_module"), SourceError, ["returned int", "nn.Module"]),
    (dict(source="toy_models:unexportable", formats=("onnx",)), ExportError, ["lost input 'x'"]),
    (dict(outputs=("a", "b")), SpecError, ["outputs", "1 names"]),
    (dict(kwargs={"bogus": 1}), SourceError, ["kwargs", "bogus"]),
])
def test_bad_input_names_the_field_and_writes_nothing(tmp_path: Path, overrides: dict, error: type,
                                                      words: list[str]) -> None:
    with pytest.raises(error) as info:
        build([request("mlp", **overrides)], tmp_path / "repo")
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_gate_refuses_a_model_stuck_in_training_mode(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"training mode after \.eval\(\): bn \(BatchNorm1d\)"):
        build([request("stuck_in_training")], tmp_path)


def test_gate_batch_invariance_catches_batch_statistics(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match=r"batch invariance: .*'OUTPUT__0' of sample 0 run alone differs"):
        build([request("batch_stats_norm", formats=("torchscript",))], tmp_path)


def test_gate_batch_invariance_catches_mixing_samples(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match=r"batch invariance: .*mixes samples across the batch"):
        build([request("mixes_batch")], tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_gate_catches_a_trace_with_a_baked_in_batch_size(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(ExportError, match="baked in batch size 2"):
        build([request("baked_batch", formats=(fmt,))], tmp_path)


def test_gate_determinism(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match=r"determinism: .*differs between two runs on the same input"):
        build([request("noisy", formats=("torchscript",))], tmp_path)


def test_gate_parity_suggests_script_for_data_dependent_control_flow(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match=r"parity: .*TracerWarning.*export with --script"):
        build([request("branchy")], tmp_path)
    results = build([request("branchy", script=True)], tmp_path)
    assert [r.report.method for r in results] == ["script", "script"]


def test_tolerances_are_per_format_and_configurable(tmp_path: Path) -> None:
    strict = FormatOptions(tolerance=Tolerance(atol=0.0, rtol=0.0, min_cosine=1.0, min_argmax_agreement=1.0))
    tight = FormatOptions(tolerance=Tolerance(atol=1e-6, rtol=0.0, min_cosine=1.0, min_argmax_agreement=1.0))
    # TorchScript runs eager's own kernels: bit-exact parity; batch invariance differs only by float rounding.
    build([request("two_heads", formats=("torchscript",), format_options={"torchscript": tight})], tmp_path / "a")
    with pytest.raises(ParityError, match=r"two_heads_onnx .* \(\|Δ\| .* > atol 0 \+ rtol 0"):
        build([request("two_heads", formats=("onnx",), format_options={"onnx": strict})], tmp_path / "b")


def test_failure_in_one_model_writes_nothing_when_all_or_nothing(tmp_path: Path) -> None:
    build([request("mlp")], tmp_path)
    before = tree(tmp_path)
    with pytest.raises(ParityError):
        build([request("dict_out"), request("mixes_batch"), request("mlp", version=2)], tmp_path,
              all_or_nothing=True)
    assert tree(tmp_path) == before


def test_new_version_leaves_existing_ones_untouched(tmp_path: Path) -> None:
    build([request("mlp", version=None)], tmp_path)
    v1 = tree(tmp_path)
    results = build([request("mlp", version=None)], tmp_path)
    assert [(r.version, r.action) for r in results] == [(2, "add-version"), (2, "add-version")]
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if k.split("/")[1] == "1"} == {
        k: v for k, v in v1.items() if k.split("/")[1] == "1"}
    manifest = json.loads((tmp_path / "mlp_onnx" / MANIFEST).read_text())
    assert sorted(manifest["versions"]) == ["1", "2"]


def test_existing_version_and_config_changes_need_overwrite(tmp_path: Path) -> None:
    build([request("mlp")], tmp_path)
    assert [r.action for r in build([request("mlp")], tmp_path)] == ["unchanged", "unchanged"]
    before = tree(tmp_path)
    with pytest.raises(RepositoryError, match=r"config\.pbtxt would change"):
        build([request("mlp", max_batch_size=4)], tmp_path)
    with pytest.raises(RepositoryError, match="version 1 exists with other content"):
        build([request("mlp", kwargs={"seed": 1})], tmp_path)  # other weights, same config
    assert tree(tmp_path) == before
    results = build([request("mlp", max_batch_size=4)], tmp_path, overwrite=True)
    assert [r.action for r in results] == ["replace-version", "replace-version"]
    assert config(tmp_path, "mlp_onnx").max_batch_size == 4


def test_wraps_existing_onnx_and_torchscript_files(tmp_path: Path) -> None:
    build([request("two_heads")], tmp_path / "a")
    onnx_file = tmp_path / "a/two_heads_onnx/1/model.onnx"
    results = build([ModelRequest("wrapped", str(onnx_file), formats=("onnx",), max_batch_size=8)], tmp_path / "b")
    assert results[0].sha256 == sha256(onnx_file)  # copied as is
    with pytest.raises(SpecError, match="formats: got 'torchscript'"):
        build([ModelRequest("wrapped", str(onnx_file), formats=("torchscript",), max_batch_size=8)], tmp_path / "c")

    pt_file = tmp_path / "a/two_heads_torchscript/1/model.pt"
    examples = tmp_path / "examples.npz"
    rng = np.random.default_rng(0)
    np.savez(examples, features=rng.normal(size=(2, 4)).astype(np.float32), ids=rng.integers(0, 20, (2, 5)))
    results = build([ModelRequest("from_pt", str(pt_file), max_batch_size=8, example_inputs=examples,
                                  inputs=(DeclaredTensor("ids", dims=(-1,)),))], tmp_path / "d")
    assert [r.report.method for r in results] == ["trace", "copy"]
    assert [list(i.dims) for i in config(tmp_path / "d", "from_pt_onnx").input] == [[4], [-1]]


def test_labels_and_warmup_files(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    build([request("mlp", labels=labels, warmup_batch_sizes=(1, 4))], tmp_path / "repo")
    model = tmp_path / "repo/mlp_onnx"
    cfg = config(tmp_path / "repo", "mlp_onnx")
    assert cfg.output[0].label_filename == "labels.txt" and (model / "labels.txt").read_text() == "a\nb\nc\n"
    assert [(w.name, w.batch_size) for w in cfg.model_warmup] == [("batch_1", 1), ("batch_4", 4)]
    data = np.frombuffer((model / "warmup/features").read_bytes(), dtype=np.float32)
    assert data.shape == (4,)
    labels.write_text("a\nb\n")
    with pytest.raises(SpecError, match="labels: got '2 labels', expected 3"):
        build([request("mlp", labels=labels)], tmp_path / "other")
