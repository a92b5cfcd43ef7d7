"""One vocabulary for Python, TOML, the CLI and the manifest.

* ``request_to_table`` → ``request_from_table`` gives back an equal ``ModelRequest`` (the example spec's
  requests and hand-made ones using nearly every field), also through JSON (how the manifest stores it); the
  table holds only TOML values.
* every key of a model table is a ``ModelRequest`` field or a registered format, and the reader accepts exactly
  those keys.
* ``tritonize build --from-manifest`` (a repository, or one manifest file) rebuilds the same files; a bad
  manifest path is exit code 2 with one line.
* ``--output json`` of ``export`` and ``check`` is parseable JSON records.
* ``TRITONIZE_URL`` sets ``--url``: ``infer`` against a closed port fails fast and names the address.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.core import formats
from tritonize.core.errors import SpecError
from tritonize.generator.config_spec import (
    DynamicBatching,
    InstanceGroup,
    Optimization,
    QueuePolicy,
    SequenceBatching,
    TensorRTAccelerator,
    VersionPolicy,
)
from tritonize.generator.exporters.torchscript import equivalent
from tritonize.generator.io_spec import DeclaredTensor
from tritonize.generator.project import load_project, request_from_table, request_to_table
from tritonize.generator.quantization import Quantization
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.writer import MANIFEST

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "generator" / "examples" / "tritonize.toml"
TOY = str(Path(__file__).parent / "toy_models.py")
REQUEST_FIELDS = {f.name for f in dataclasses.fields(ModelRequest)}


def hand_made(labels: Path) -> list[ModelRequest]:
    """Requests that between them set nearly every field to something other than its default."""
    tolerance = formats.Tolerance(atol=2e-4, rtol=5e-3, min_cosine=0.999, min_argmax_agreement=0.95)
    many = ModelRequest(
        "many", f"{TOY}:two_heads", formats=("onnx", "torchscript", "onnx-int8"),
        kwargs={"seed": 3, "widths": [4, 8], "name": "x"},
        inputs=(DeclaredTensor("features", "float32", (4,)), DeclaredTensor("ids", "int64", (-1,), range=(0, 20))),
        outputs=("scores", "tokens"), example_inputs=Path("examples.npz"), max_batch_size=16,
        dynamic_batching=DynamicBatching(
            preferred_batch_size=(4, 8), max_queue_delay_microseconds=250, preserve_ordering=True, priority_levels=2,
            default_priority_level=1, default_queue_policy=QueuePolicy("DELAY", 1000, True, 64),
            priority_queue_policy={2: QueuePolicy(max_queue_size=8)}),
        instance_group=(InstanceGroup("cpu", 2), InstanceGroup("gpu", 1, (0, 1))),
        version=4, version_policy=VersionPolicy("latest", 2), warmup_batch_sizes=(), response_cache=True,
        labels=labels, script=True, prune=0.25, evaluation="tests.unit.toy_models:evaluation",
        format_options={
            "onnx": FormatOptions(tolerance=tolerance, parameters={"intra_op_thread_count": "2"}, opset=13,
                                  optimization=Optimization(tensorrt=TensorRTAccelerator("FP16", 1 << 30),
                                                            graph_level=1)),
            "torchscript": FormatOptions(parameters={"INFERENCE_MODE": "true"}),
            "onnx-int8": FormatOptions(
                quantization=Quantization("static", per_channel=True, calibration="entropy", calibration_samples=32,
                                          calibration_data="calibration.npz", nodes_to_exclude=("n1",)),
                accuracy_budget=0.5, opset=15),
        },
    )
    sequence = ModelRequest(
        "stateful", "pkg.models:build", formats=("torchscript", "torchscript-int8"), max_batch_size=4,
        sequence_batching=SequenceBatching(max_sequence_idle_microseconds=5000, strategy="oldest",
                                           max_queue_delay_microseconds=10),
        version_policy=VersionPolicy("specific", versions=(3, 1)), warmup_batch_sizes=(1, 4),
        default_model_filename="model.bin",
        format_options={"torchscript-int8": FormatOptions(quantization=Quantization(modules=("Linear", "LSTM")))},
    )
    unbatched = ModelRequest("unbatched", f"{TOY}:mlp", max_batch_size=0, version_policy=VersionPolicy("all"),
                             dynamic_batching=None, instance_group=(InstanceGroup("auto"),))
    return [many, sequence, unbatched]


def all_requests(tmp_path: Path) -> list[ModelRequest]:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    return [*load_project(EXAMPLES).models, *hand_made(labels)]


def assert_toml_values(value: Any, where: str = "") -> None:
    """Only what TOML can hold: strings, numbers, booleans, lists and tables with string keys."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            assert_toml_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_toml_values(item, f"{where}[{i}]")
    else:
        assert isinstance(value, (str, int, float, bool)), f"{where}: {type(value).__name__} {value!r}"


# --- a. round trip ---------------------------------------------------------------------------------------------


def test_request_table_round_trip(tmp_path: Path) -> None:
    requests = all_requests(tmp_path)
    assert [r.name for r in requests] == ["digits", "sequence", "reviews", "glyphs", "many", "stateful", "unbatched"]
    for req in requests:
        table = request_to_table(req)
        assert_toml_values(table, f"models.{req.name}")
        assert request_from_table(req.name, table, Path("."), "x") == req, req.name
        # the manifest keeps the table as JSON
        assert request_from_table(req.name, json.loads(json.dumps(table)), Path("."), "x") == req, req.name


def test_the_table_writes_only_what_differs_from_the_defaults(tmp_path: Path) -> None:
    assert request_to_table(ModelRequest("m", "pkg:fn")) == {"source": "pkg:fn"}
    table = request_to_table(all_requests(tmp_path)[4])  # "many"
    assert table["warmup_batch_sizes"] == []  # no warmup is not the default (1 and max_batch_size)
    assert table["inputs"] == {"features": {"dtype": "float32", "dims": [4]},
                               "ids": {"dtype": "int64", "dims": [-1], "range": [0, 20]}}
    assert table["version_policy"] == {"latest": 2}
    assert table["dynamic_batching"]["priority_queue_policy"] == {"2": {"max_queue_size": 8}}
    assert table["onnx"]["tolerance"] == {"atol": 2e-4, "rtol": 5e-3, "min_cosine": 0.999,
                                          "min_argmax_agreement": 0.95}
    assert table["onnx-int8"]["quantization"]["method"] == "static"


# --- b. the keys are the fields -------------------------------------------------------------------------------


def test_every_table_key_is_a_field_or_a_format(tmp_path: Path) -> None:
    option_fields = {f.name for f in dataclasses.fields(FormatOptions)}
    for req in all_requests(tmp_path):
        table = request_to_table(req)
        assert set(table) <= REQUEST_FIELDS | set(formats.FORMATS), sorted(set(table) - REQUEST_FIELDS)
        for fmt in set(table) & set(formats.FORMATS):
            assert set(table[fmt]) <= option_fields, (req.name, fmt, table[fmt])
    # and the reader takes exactly those keys: the structural forms (name, format_options) are not keys
    with pytest.raises(SpecError) as info:
        request_from_table("m", {"source": "pkg:fn", "bogus": 1}, Path("."), "models.m")
    expected = sorted((REQUEST_FIELDS - {"name", "format_options"}) | set(formats.FORMATS))
    assert info.value.field == "models.m.bogus"
    assert info.value.expected == "one of the keys " + ", ".join(expected)


# --- c. build --from-manifest ----------------------------------------------------------------------------------


def _digests(repo: Path) -> dict[str, str]:
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file()}


def _without_torchscript_digests(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest with the sha256/size of TorchScript files left out (they are compared by equivalence)."""
    manifest = json.loads(json.dumps(manifest))
    for entry in manifest["versions"].values():
        if formats.FORMATS[entry["format"]].equivalent:
            entry["artifact"].pop("sha256")
            entry["artifact"].pop("bytes")
    return manifest


def assert_same_repository(a: Path, b: Path) -> None:
    first, second = _digests(a), _digests(b)
    assert set(first) == set(second)
    for rel in first:
        if rel.endswith("model.pt"):  # a second trace in one process renames types (___torch_mangle_N)
            assert equivalent(a / rel, b / rel), rel
        elif rel.endswith(MANIFEST):
            ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            assert _without_torchscript_digests(ma) == _without_torchscript_digests(mb), rel
            for entry in mb["versions"].values():  # the digest it records is its own file's
                assert entry["artifact"]["sha256"] == _digests(b)[f"{Path(rel).parent}/{entry['artifact']['file']}"]
        else:
            assert first[rel] == second[rel], rel


def cli(*args: str, **kwargs: Any) -> tuple[int, str, str]:
    result = CliRunner(**kwargs).invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def built_from_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Repository A, built by `tritonize build SPEC`: a toy model in ONNX and TorchScript."""
    root = tmp_path_factory.mktemp("spec")
    spec = root / "tritonize.toml"
    spec.write_text(f'repository = "A"\n\n[models.toy]\nsource = "{TOY}:mlp"\nformats = ["onnx", "torchscript"]\n'
                    'max_batch_size = 8\nversion = 1\ninstance_group = [{ kind = "cpu", count = 1 }]\n'
                    '\n[models.toy.onnx]\nparameters = { intra_op_thread_count = "1" }\n')
    code, _, err = cli("build", str(spec))
    assert code == 0, err
    assert {"toy_onnx/1/model.onnx", "toy_torchscript/1/model.pt"} <= set(_digests(root / "A"))
    return root / "A"


def test_build_from_the_manifests_of_a_repository(built_from_spec: Path, tmp_path: Path) -> None:
    code, _, err = cli("build", "--from-manifest", str(built_from_spec), "--repo", str(tmp_path / "B"))
    assert code == 0, err
    assert_same_repository(built_from_spec, tmp_path / "B")


def test_build_from_one_manifest_file(built_from_spec: Path, tmp_path: Path) -> None:
    manifest = built_from_spec / "toy_onnx" / MANIFEST
    code, _, err = cli("build", "--from-manifest", str(manifest), "--repo", str(tmp_path / "C"))
    assert code == 0, err
    assert_same_repository(built_from_spec, tmp_path / "C")  # the request names both formats
    code, out, err = cli("build", "--from-manifest", str(manifest), "--output", "json")  # into A itself
    assert code == 0, err
    assert {r["action"] for r in json.loads(out)["verification"]} == {"unchanged"}


def test_a_bad_manifest_path_is_a_usage_error(tmp_path: Path) -> None:
    not_a_manifest = tmp_path / "notes.json"
    not_a_manifest.write_text('{"model": "x"}')
    (tmp_path / "empty").mkdir()
    for path, words in ((not_a_manifest, "a tritonize manifest"), (tmp_path / "empty", MANIFEST)):
        code, out, err = cli("build", "--from-manifest", str(path), "--repo", str(tmp_path / "out"))
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --from-manifest:"), err
        assert str(path) in lines[0] and words in lines[0], err
        assert out == "" and not (tmp_path / "out").exists()
    code, _, err = cli("build", "--from-manifest", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err


# --- d. --output json ------------------------------------------------------------------------------------------


def test_export_and_check_print_json_records(tmp_path: Path) -> None:
    code, out, err = cli("export", f"{TOY}:mlp", "--name", "toy", "--format", "onnx", "--repo", str(tmp_path),
                         "--max-batch-size", "4", "--output", "json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"verification", "optimization"}
    assert data["verification"] and all(isinstance(r, dict) for r in data["verification"])
    [row] = data["verification"]
    assert row["model"] == "toy_onnx" and row["action"] == "new" and 0.99 <= row["cosine"] <= 1.0 + 1e-9
    assert data["optimization"] == []

    code, out, err = cli("check", str(ROOT / "tests/check_repos/fixed_batch_dim"), "--output", "json")
    assert code == 1  # the case's planted error
    findings = json.loads(out)
    assert isinstance(findings, list) and findings
    assert all({"severity", "model", "code", "message"} <= set(f) for f in findings)
    assert "fixed-batch-dim" in {f["code"] for f in findings}
    code, out, _ = cli("check", str(tmp_path), "--output", "json")
    assert code == 0 and json.loads(out) == []


# --- e. TRITONIZE_URL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["127.0.0.1:1", "grpc://127.0.0.1:1", "http://127.0.0.1:1"])
def test_tritonize_url_sets_the_server(tmp_path: Path, url: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    start = time.monotonic()
    code, out, err = cli("infer", "toy_onnx", "--input", f"features={tmp_path / 'x.npy'}", "--timeout", "1",
                         env={"TRITONIZE_URL": url})
    took = time.monotonic() - start
    assert code == 1 and out == "", err
    assert took < 10, took
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "127.0.0.1:1" in lines[0], f"the error does not name the server: {lines[0]}"
