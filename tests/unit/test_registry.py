"""A new format is one ``formats.register()`` plus its exporter: nothing else needs an edit.

* ``onnx-copy``, a second format on the onnxruntime backend whose exporter (defined below and named by file
  path, ``tests/unit/test_registry.py:export_copy_onnx``) reuses the ONNX exporter: the build writes
  ``<name>_onnx_copy/1/model.onnx`` with ``backend: "onnxruntime"``, the manifest records ``onnx-copy``, the spec
  vocabulary takes its per-format keys, and ``tritonize check`` is clean.
* ``dummy``, a brand-new backend (platform, default file, parameters all from its record): the build renders
  ``backend: "dummy"`` and ``1/model.dummy``, ``check`` knows the backend, and the config's backend parameters are
  validated against the record; after ``unregister`` the backend is unknown again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritonize.core import formats
from tritonize.core.check import check_repository
from tritonize.core.errors import SpecError
from tritonize.generator.build import build
from tritonize.generator.config_spec import InstanceGroup, ModelConfigSpec, TensorConfig
from tritonize.generator.exporters import Artifact, ExportJob
from tritonize.generator.project import request_from_table
from tritonize.generator.render import parse_config
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.writer import MANIFEST

HERE = Path(__file__).resolve()
TOY = str(HERE.parent / "toy_models.py")
TOLERANCE = formats.Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.9999, min_argmax_agreement=0.99)


# --- the exporters the registered formats name (module level: loaded by file path) -------------------------


def export_copy_onnx(job: ExportJob) -> Artifact:
    """``onnx-copy``: the ONNX exporter's file, recorded under this format's name."""
    from tritonize.generator.exporters.onnx import export_onnx

    return dataclasses.replace(export_onnx(job), format=job.format.name, method="onnx-copy")


def export_dummy(job: ExportJob) -> Artifact:
    """``dummy``: a small file; verification runs the eager model itself (the stand-in for a dummy runtime)."""
    path = job.directory / job.format.backend.default_filename
    path.write_bytes(b"dummy model of " + job.model_name.encode() + b"\n")
    loaded = job.loaded
    return Artifact(job.format.name, path, "dummy", [i.name for i in loaded.inputs], [o.name for o in loaded.outputs],
                    loaded.reference)


# --- registration fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[list[formats.Format]]:
    """Register formats for one test; unregister them (and restore this module's sys.modules entry, which a
    ``file.py:function`` reference to this file replaces) afterwards."""
    added: list[formats.Format] = []
    module = sys.modules.get(HERE.stem)
    try:
        yield added
    finally:
        for fmt in reversed(added):
            formats.unregister(fmt.name)
        if module is not None:
            sys.modules[HERE.stem] = module
        else:
            sys.modules.pop(HERE.stem, None)


DUMMY = formats.Backend("dummy", "dummy_platform", "model.dummy", parameters={"dummy_threads": int}, standin="x:y")


def test_a_second_onnxruntime_format_needs_only_its_record(tmp_path: Path, registered: list[formats.Format]) -> None:
    fmt = formats.register(formats.Format("onnx-copy", formats.ONNXRUNTIME, exporter=f"{HERE}:export_copy_onnx",
                                          tolerance=TOLERANCE, options=("opset",)))
    registered.append(fmt)
    assert formats.BACKENDS["onnxruntime"] is formats.ONNXRUNTIME  # the backend record is shared, not copied

    # the spec's vocabulary has the new format: its table takes `opset` (its option), not `quantization`
    table = {"source": f"{TOY}:mlp", "formats": ["onnx-copy"], "onnx-copy": {"opset": 16}}
    assert request_from_table("toy", table, Path("."), "models.toy").options("onnx-copy").opset == 16
    with pytest.raises(SpecError, match=r"models\.toy\.onnx-copy\.quantization"):
        request_from_table("toy", {**table, "onnx-copy": {"quantization": {"method": "dynamic"}}}, Path("."),
                           "models.toy")

    repo = tmp_path / "repo"
    [built] = build([ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx-copy",),
                                  instance_group=(InstanceGroup("cpu"),))], repo)
    assert (built.name, built.format, built.action) == ("toy_onnx_copy", "onnx-copy", "new")
    model = repo / "toy_onnx_copy"
    assert (model / "1" / "model.onnx").is_file()
    config = parse_config((model / "config.pbtxt").read_text())
    assert config.backend == "onnxruntime" and config.name == "toy_onnx_copy"
    entry = json.loads((model / MANIFEST).read_text())["versions"]["1"]
    assert entry["format"] == "onnx-copy" and entry["export"]["method"] == "onnx-copy"
    assert entry["request"]["formats"] == ["onnx-copy"]
    assert entry["export"]["opset"] == 17  # the exporter read this format's (default) options
    assert built.report.format == "onnx-copy"
    findings = check_repository(repo)
    assert [f for f in findings if f.severity == "error"] == [], findings


def test_a_new_backend_is_known_to_build_config_and_check(tmp_path: Path, registered: list[formats.Format]) -> None:
    fmt = formats.register(formats.Format("dummy-fmt", DUMMY, exporter=f"{HERE}:export_dummy", tolerance=TOLERANCE))
    registered.append(fmt)

    repo = tmp_path / "repo"
    request = ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("dummy-fmt",),
                           instance_group=(InstanceGroup("cpu"),),
                           format_options={"dummy-fmt": FormatOptions(parameters={"dummy_threads": "2"})})
    [built] = build([request], repo)
    assert (built.name, built.format) == ("toy_dummy_fmt", "dummy-fmt")
    model = repo / "toy_dummy_fmt"
    assert (model / "1" / "model.dummy").read_bytes() == b"dummy model of toy_dummy_fmt\n"
    text = (model / "config.pbtxt").read_text()
    assert 'backend: "dummy"' in text
    config = parse_config(text)
    assert config.backend == "dummy" and dict(config.parameters)["dummy_threads"].string_value == "2"
    entry = json.loads((model / MANIFEST).read_text())["versions"]["1"]
    assert entry["format"] == "dummy-fmt" and entry["artifact"]["file"] == "1/model.dummy"
    assert all(o.max_abs == 0.0 for o in built.report.outputs)  # the dummy runner is the eager model

    findings = check_repository(repo)
    assert not [f for f in findings if f.code in ("backend-unknown", "backend-typo", "backend-missing",
                                                  "model-file-missing")], findings
    assert [f for f in findings if f.severity == "error"] == [], findings

    # the config's backend parameters are the record's: known ones pass, others name the backend's list
    io = (TensorConfig("features", "TYPE_FP32", (4,)),), (TensorConfig("logits", "TYPE_FP32", (3,)),)
    spec = ModelConfigSpec("toy_dummy_fmt", "dummy", 8, *io, parameters={"dummy_threads": "4"})
    assert spec.platform == "dummy_platform" and spec.model_filename == "model.dummy"
    with pytest.raises(SpecError, match=r"parameters\.intra_op_thread_count.*a parameter of the dummy backend: "
                                        r"dummy_threads"):
        ModelConfigSpec("toy_dummy_fmt", "dummy", 8, *io, parameters={"intra_op_thread_count": "1"})
    with pytest.raises(SpecError, match=r"parameters\.dummy_threads.*non-negative integer"):
        ModelConfigSpec("toy_dummy_fmt", "dummy", 8, *io, parameters={"dummy_threads": "many"})
    with pytest.raises(SpecError, match=r"dummy-fmt\.parameters\.intra_op_thread_count"):
        dataclasses.replace(request, format_options={"dummy-fmt": FormatOptions(
            parameters={"intra_op_thread_count": "1"})})

    formats.unregister("dummy-fmt")
    registered.clear()
    assert "dummy" not in formats.BACKENDS and "dummy-fmt" not in formats.FORMATS
    assert "onnxruntime" in formats.BACKENDS
    with pytest.raises(SpecError, match="backend: got 'dummy'"):
        ModelConfigSpec("toy_dummy_fmt", "dummy", 8, *io)
    assert any(f.code == "backend-unknown" for f in check_repository(repo))


def test_a_backend_name_cannot_be_registered_twice_with_other_records(registered: list[formats.Format]) -> None:
    impostor = dataclasses.replace(formats.ONNXRUNTIME, default_filename="model.ort")
    with pytest.raises(ValueError, match="backend 'onnxruntime' is registered with another record"):
        formats.register(formats.Format("onnx-impostor", impostor, exporter=f"{HERE}:export_copy_onnx",
                                        tolerance=TOLERANCE))
    assert "onnx-impostor" not in formats.FORMATS and formats.BACKENDS["onnxruntime"] is formats.ONNXRUNTIME
