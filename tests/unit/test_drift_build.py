"""The build records each output's reference distribution (manifest key ``output_distribution``), the same bytes
every time; and the drift test: the built ONNX files (onnxruntime) on inputs like the reference's score below
PSI_ALERT, on shifted inputs above it, for a classifier, a regressor and an embedding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import drift_models
import numpy as np
import onnxruntime as ort
import pytest

from tritonize.client.drift import DriftMonitor, DriftScore, load_references
from tritonize.core import distribution as dist
from tritonize.core.manifest import MANIFEST
from tritonize.core.observability import PSI_ALERT
from tritonize.generator.build import build
from tritonize.generator.distribution import REFERENCE_SAMPLES, SAMPLE_BATCH, SAMPLE_SEED
from tritonize.generator.examples.digits import load_digits_split
from tritonize.generator.request import ModelRequest
from tritonize.generator.source import load_source

UNIT = Path(__file__).parent
DIGITS = "tritonize.generator.examples.digits:build_digits_cnn"


def recorded(repo: Path, model: str, version: str = "1") -> dict:
    return json.loads((repo / model / MANIFEST).read_text())["versions"][version][dist.KEY]


def test_toy_models_record_classes_and_values_on_sample_inputs(tmp_path: Path) -> None:
    requests = [ModelRequest(fn, f"toy_models:{fn}", max_batch_size=8, version=1, formats=("onnx",))
                for fn in ("mlp", "two_heads", "per_sample_scalar", "dict_out")]
    build(requests, tmp_path)
    on = f"sample inputs ({REFERENCE_SAMPLES}, seeds from {SAMPLE_SEED})"
    mlp, two, scalar, dict_out = (recorded(tmp_path, f"{r.name}_onnx") for r in requests)
    assert (mlp["on"], mlp["samples"]) == (on, REFERENCE_SAMPLES)
    assert mlp["outputs"]["OUTPUT__0"]["kind"] == "classes" and len(mlp["outputs"]["OUTPUT__0"]["frequencies"]) == 3
    # class scores [5] and token sums [T] (a values output of variable width: its samples' norms too)
    assert [two["outputs"][o]["kind"] for o in ("OUTPUT__0", "OUTPUT__1")] == ["classes", "values"]
    assert two["outputs"]["OUTPUT__1"]["dims"] == [-1] and "norm" in two["outputs"]["OUTPUT__1"]
    # a dict's outputs by their keys: logits, and probabilities (confidence taken as they are)
    assert {k: v["scores"] for k, v in dict_out["outputs"].items()} == {"scores": "logits", "probs": "probabilities"}
    assert dict_out["outputs"]["scores"]["confidence"] == dict_out["outputs"]["probs"]["confidence"]
    # one number per sample, price * 1.2 + 1: computed here from the same sample inputs
    loaded = load_source("toy_models:per_sample_scalar", max_batch_size=8)
    prices = np.concatenate([loaded.samples.batch(SAMPLE_BATCH, seed=SAMPLE_SEED + i)["price"]
                             for i in range(REFERENCE_SAMPLES // SAMPLE_BATCH)])
    expected = (prices * np.float32(1.2) + np.float32(1.0)).astype(np.float64)
    record = scalar["outputs"]["OUTPUT__0"]
    assert record["kind"] == "values" and record["dims"] == [] and "norm" not in record
    assert record["quantiles"] == dist.rounded_list(np.quantile(expected, dist.QUANTILE_LEVELS))
    assert record["mean"] == pytest.approx(expected.mean(), rel=1e-3)
    assert sum(record["bins"]) == pytest.approx(1.0, abs=1e-3) and len(record["bins"]) == 10


def test_the_digits_example_records_its_real_evaluation_set_for_every_format(tmp_path: Path) -> None:
    build([ModelRequest("digits", DIGITS, max_batch_size=64, version=1, formats=("onnx", "torchscript"))], tmp_path)
    onnx_record, ts_record = recorded(tmp_path, "digits_onnx"), recorded(tmp_path, "digits_torchscript")
    assert onnx_record == ts_record  # the eager reference's: the same for every format
    test_x = load_digits_split().test_x
    assert (onnx_record["on"], onnx_record["samples"]) == ("the model's evaluation set", len(test_x))
    logits = ort.InferenceSession(str(tmp_path / "digits_onnx/1/model.onnx")).run(None, {"image": test_x})[0]
    record = onnx_record["outputs"]["logits"]
    assert record["kind"] == "classes" and record["scores"] == "logits"
    assert record["frequencies"] == pytest.approx(np.bincount(logits.argmax(1), minlength=10) / len(test_x),
                                                  abs=1.5 / len(test_x))
    top = np.exp(logits - logits.max(1, keepdims=True))
    confidence = 1 / top.sum(1)
    assert record["confidence"]["mean"] == pytest.approx(confidence.mean(), abs=1e-3)
    assert record["confidence"]["quantiles"] == pytest.approx(np.quantile(confidence, dist.QUANTILE_LEVELS),
                                                              abs=1e-3)


def test_an_ensemble_records_the_distribution_of_its_model(tmp_path: Path) -> None:
    build([ModelRequest("reviews", "tritonize.generator.examples.reviews:build_review_classifier", max_batch_size=32,
                        version=1, formats=("onnx",))], tmp_path)
    ensemble, model = recorded(tmp_path, "reviews_onnx_ensemble"), recorded(tmp_path, "reviews_onnx")
    assert ensemble == model and model["on"] == "the model's evaluation set" and model["samples"] == 360
    assert dist.KEY not in json.loads((tmp_path / "reviews_preprocess" / MANIFEST).read_text())["versions"]["1"]


def test_a_version_built_before_the_record_gets_it_on_the_next_build(tmp_path: Path) -> None:
    req = ModelRequest("mlp", "toy_models:mlp", max_batch_size=8, version=1, formats=("onnx",))
    build([req], tmp_path)
    path = tmp_path / "mlp_onnx" / MANIFEST
    manifest = json.loads(path.read_text())
    expected = manifest["versions"]["1"].pop(dist.KEY)
    path.write_text(json.dumps(manifest))
    [again] = build([req], tmp_path)
    assert again.action == "repair-manifest" and recorded(tmp_path, "mlp_onnx") == expected
    assert build([req], tmp_path)[0].action == "unchanged"


SPEC = f"""
[models.two_heads]
source = "{UNIT / 'toy_models.py'}:two_heads"
formats = ["onnx"]
max_batch_size = 8

[models.regressor]
source = "{UNIT / 'drift_models.py'}:friedman_regressor"
formats = ["onnx"]
max_batch_size = 64
"""


def test_manifests_are_byte_identical_across_processes(tmp_path: Path) -> None:
    spec = tmp_path / "tritonize.toml"
    spec.write_text(SPEC)
    cli = [sys.executable, "-c", "from tritonize.cli import main; main()", "build", str(spec), "--repo"]
    for repo in ("a", "b"):
        done = subprocess.run([*cli, str(tmp_path / repo)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    for model in ("two_heads_onnx", "regressor_onnx"):
        first, second = ((tmp_path / repo / model / MANIFEST).read_bytes() for repo in ("a", "b"))
        assert first == second and dist.KEY.encode() in first


# --- the drift test -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("drift")
    build([ModelRequest("digits", DIGITS, max_batch_size=64, version=1, formats=("onnx",)),
           ModelRequest("regressor", "drift_models:friedman_regressor", max_batch_size=64, version=1,
                        formats=("onnx",)),
           ModelRequest("embedder", "drift_models:digits_embedder", max_batch_size=64, version=1,
                        formats=("onnx",))], repo)
    return repo


def served_drift(repo: Path, model: str, inputs: dict[str, np.ndarray], batch: int = 8) -> DriftScore:
    """Run the built ONNX file on ``inputs`` ``batch`` samples per request, each response observed."""
    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"))
    references = load_references(repo / model)
    monitor = DriftMonitor(references)
    names = [o.name for o in session.get_outputs()]
    count = len(next(iter(inputs.values())))
    for start in range(0, count, batch):
        outputs = session.run(None, {k: v[start : start + batch] for k, v in inputs.items()})
        monitor.observe(dict(zip(names, outputs)))
    [score] = monitor.scores().values()
    return score


CASES = {
    # model, input, unshifted inputs, shifted inputs
    "classifier inverted": ("digits_onnx", "image", lambda: drift_models.digits_inputs(None),
                            lambda: drift_models.digits_inputs("inverted")),
    "classifier noised": ("digits_onnx", "image", lambda: drift_models.digits_inputs(None),
                          lambda: drift_models.digits_inputs("noised")),
    "regressor": ("regressor_onnx", "features", lambda: drift_models.friedman_inputs(0.0),
                  lambda: drift_models.friedman_inputs(0.25)),
    "embedding inverted": ("embedder_onnx", "image", lambda: drift_models.digits_inputs(None),
                           lambda: drift_models.digits_inputs("inverted")),
    "embedding brightened": ("embedder_onnx", "image", lambda: drift_models.digits_inputs(None),
                             lambda: drift_models.digits_inputs("brightened")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shifted_inputs_drift_and_unshifted_ones_do_not(repo: Path, case: str) -> None:
    model, name, unshifted, shifted = CASES[case]
    same = served_drift(repo, model, {name: unshifted()})
    moved = served_drift(repo, model, {name: shifted()})
    assert same.samples == moved.samples == 1000  # the window, full
    assert not same.drifted and same.psi < PSI_ALERT / 2, same
    assert moved.drifted and moved.psi > PSI_ALERT, moved
    assert moved.ks > 2 * same.ks, (same, moved)
