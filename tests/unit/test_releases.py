"""The target Triton release (``tritonize.core.releases``): what each NGC release loads, used by the exporter and
by ``check``.

* the table: 24.10 (the local server's release, the default) reads ONNX IR <= 10, opset <= 21 (ONNX Runtime
  1.19.2) and TorchScript file format <= 10; every release resolves its ONNX Runtime limits; an unknown release
  is one SpecError line listing the known ones, on the CLI too (exit 2);
* ``check``: a file the target cannot load is an error naming the release and the limit; the same file is fine
  for a release that reads it; ``backend_load_errors`` (the stand-ins' load check) refuses it as 24.10 does;
* the build: an ONNX file stamped with a newer IR version than the target reads is written with the target's
  (and the same bytes twice); an opset the target cannot read is refused before anything is written, with one
  line naming the field, the value and the limit; the manifest records the target, and a rebuild from it keeps it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from onnx import helper
from tritonclient.grpc import model_config_pb2 as pb

from tritonize.cli import main
from tritonize.core import releases
from tritonize.core.check import backend_load_errors, check_repository
from tritonize.core.check.torchscript import file_format
from tritonize.core.errors import SpecError
from tritonize.generator.build import build
from tritonize.generator.errors import ExportError
from tritonize.generator.exporters.onnx import fit_to_target
from tritonize.generator.project import load_project, requests_from_manifests
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.writer import MANIFEST, sha256

TOY = str(Path(__file__).parent / "toy_models.py")
CASES = Path(__file__).parents[1] / "check_repos"


def test_the_local_release_is_the_default_and_reads_what_ort_1_19_reads() -> None:
    local = releases.get()
    assert (local.name, local.triton, local.onnxruntime) == ("24.10", "2.51.0", "1.19.2")
    assert (local.onnx_ir_version, local.onnx_opset, local.torchscript_file_format) == (10, 21, 10)
    assert releases.get("23.10").onnx_ir_version == 9 and releases.get("23.10").onnx_opset == 19
    assert releases.get("25.03").onnx_opset == 22 and releases.get("25.12").onnx_ir_version == 11


def test_every_release_resolves_its_limits_and_later_releases_read_no_less() -> None:
    ordered = [releases.RELEASES[name] for name in sorted(releases.RELEASES)]
    assert list(releases.RELEASES) == sorted(releases.RELEASES)
    limits = [(r.onnx_ir_version, r.onnx_opset, r.torchscript_file_format) for r in ordered]
    assert all(a <= b for earlier, later in itertools.pairwise(limits) for a, b in zip(earlier, later))
    assert all(r.record()["triton_version"] == r.name for r in ordered)


def test_an_unknown_release_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(SpecError) as info:
        releases.get("22.01")
    message = str(info.value)
    assert message.startswith("triton_version: got '22.01', expected an NGC Triton release") and "\n" not in message
    assert "23.10" in message and "24.10" in message and "25.12" in message
    result = CliRunner().invoke(main, ["check", str(CASES / "valid"), "--triton-version", "22.01"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "--triton-version: got '22.01'" in result.output


def test_problem_lines_name_the_value_the_limit_and_the_release() -> None:
    local = releases.get()
    assert local.onnx_ir_problem(10) is None and local.onnx_opset_problem(21) is None
    assert local.onnx_ir_problem(14) == "ONNX IR version 14 > 10, the highest ONNX Runtime 1.19.2 (Triton 24.10) reads"
    assert local.onnx_opset_problem(22) == "ONNX opset 22 > 21, the highest ONNX Runtime 1.19.2 (Triton 24.10) reads"
    assert local.torchscript_problem(11) == ("TorchScript file format version 11 > 10, the highest PyTorch "
                                             "2.5.0a0+e000cf0ad9 (Triton 24.10) reads")
    assert "nvcr.io/nvidia/pytorch:23.10-py3" in (releases.get("23.10").torchscript_problem(11) or "")


@pytest.mark.parametrize(("case", "older", "newer"), [
    ("onnx_ir_too_new", "24.10", None),  # IR 14: no release here reads it
    ("onnx_opset_too_new", "25.02", "25.03"),  # opset 22: ONNX Runtime 1.21 reads it
])
def test_check_judges_the_file_for_the_release_named(case: str, older: str, newer: str | None) -> None:
    assert [f.code for f in check_repository(CASES / case, older)] == [case.replace("_", "-")]
    if newer:
        assert check_repository(CASES / case, newer) == []


def test_the_stand_ins_refuse_what_the_local_release_cannot_load() -> None:
    model = CASES / "onnx_ir_too_new" / "m"
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), pb.ModelConfig())
    assert backend_load_errors(model, cfg, 1) == [
        "version 1 'model.onnx': ONNX IR version 14 > 10, the highest ONNX Runtime 1.19.2 (Triton 24.10) reads"]


def test_torchscript_file_format_is_read_from_the_archive() -> None:
    assert file_format(CASES / "torchscript_too_new" / "m" / "1" / "model.pt") == 11
    assert file_format(CASES / "valid" / "classifier_ts" / "1" / "softmax.pt") <= 10  # type: ignore[operator]
    assert file_format(CASES / "model_unreadable" / "m" / "1" / "model.onnx") is None


def _onnx_source(tmp_path: Path, ir_version: int, opset: int = 17, name: str = "src") -> Path:
    """The toy mlp as an ONNX file exported at ``opset`` (for 25.03, which reads up to 22), stamped ``ir_version``."""
    build([ModelRequest("mlp", f"{TOY}:mlp", formats=("onnx",), max_batch_size=8, version=1,
                        format_options={"onnx": FormatOptions(opset=opset)}, triton_version="25.03")],
          tmp_path / name)
    path = tmp_path / name / "mlp_onnx" / "1" / "model.onnx"
    model = onnx.load(str(path))
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return path


def test_a_build_for_an_older_release_writes_the_ir_version_it_reads(tmp_path: Path) -> None:
    source = _onnx_source(tmp_path, ir_version=14)  # what onnx 1.23 stamps by default
    written = {}
    for version in ("23.10", "24.10", "23.10"):
        repo = tmp_path / f"for-{version}-{len(written)}"
        build([ModelRequest("m", str(source), formats=("onnx",), max_batch_size=8, triton_version=version)], repo)
        path = repo / "m_onnx" / "1" / "model.onnx"
        assert onnx.load(str(path)).ir_version == releases.get(version).onnx_ir_version
        assert check_repository(repo, version) == []
        written.setdefault(version, set()).add(sha256(path))
        entry = json.loads((repo / "m_onnx" / MANIFEST).read_text())["versions"]["1"]
        assert entry["target"] == releases.get(version).record()
        assert entry["export"]["ir_version_stamped"] == 14
        assert [r.triton_version for r in requests_from_manifests(repo)] == [version]
    assert all(len(digests) == 1 for digests in written.values())  # the same bytes for the same target


def test_a_file_the_target_cannot_read_fails_the_build_and_writes_nothing(tmp_path: Path) -> None:
    source = _onnx_source(tmp_path, ir_version=10, opset=22)
    repo = tmp_path / "repo"
    with pytest.raises(ExportError) as info:
        build([ModelRequest("m", str(source), formats=("onnx",), max_batch_size=8)], repo)
    assert str(info.value) == "model.onnx: ONNX opset 22 > 21, the highest ONNX Runtime 1.19.2 (Triton 24.10) reads"
    assert not repo.exists() or not any(repo.iterdir())


def test_an_opset_above_the_target_is_refused_before_the_build(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"onnx\.opset: got 21, expected at most 19, the highest opset ONNX Runtime "
                                        r"1\.16\.0 \(Triton 23\.10\) reads"):
        ModelRequest("m", f"{TOY}:mlp", format_options={"onnx": FormatOptions(opset=21)}, triton_version="23.10")
    repo = tmp_path / "repo"
    result = CliRunner().invoke(main, ["export", f"{TOY}:mlp", "--name", "m", "--format", "onnx", "--opset", "21",
                                       "--triton-version", "23.10", "--repo", str(repo)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "onnx.opset: got 21, expected at most 19" in result.output and not repo.exists()


def test_ir_is_lowered_only_where_the_opsets_allow(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    path = tmp_path / "model.onnx"
    # ai.onnx.ml opset 5 needs IR version 10 (onnx 1.16); Triton 23.10's ONNX Runtime 1.16 reads IR 9
    onnx.save(helper.make_model(graph, ir_version=14, opset_imports=[helper.make_opsetid("", 17),
                                                                     helper.make_opsetid("ai.onnx.ml", 5)]), path)
    with pytest.raises(ExportError, match=r"model\.onnx: ONNX IR version 14 > 9, the highest ONNX Runtime 1\.16\.0 "
                                          r"\(Triton 23\.10\) reads, and its opsets need IR version 10"):
        fit_to_target(path, releases.get("23.10"))
    assert fit_to_target(path, releases.get("24.10")) == 14 and onnx.load(str(path)).ir_version == 10


def test_the_spec_names_a_release_for_every_model_and_the_flag_overrides_it(tmp_path: Path) -> None:
    spec = tmp_path / "tritonize.toml"
    spec.write_text(f'triton_version = "23.10"\n[models.a]\nsource = "{TOY}:mlp"\nformats = ["onnx"]\n'
                    f'[models.b]\nsource = "{TOY}:mlp"\nformats = ["onnx"]\ntriton_version = "25.03"\n')
    assert [m.triton_version for m in load_project(spec).models] == ["23.10", "25.03"]
    result = CliRunner().invoke(main, ["build", str(spec), "--repo", str(tmp_path / "repo"), "--triton-version",
                                       "24.12"])
    assert result.exit_code == 0, result.output
    for model in ("a_onnx", "b_onnx"):
        entry = json.loads((tmp_path / "repo" / model / MANIFEST).read_text())["versions"]["1"]
        assert entry["request"]["triton_version"] == entry["target"]["triton_version"] == "24.12"
    spec.write_text(spec.read_text().replace('"23.10"', '"22.12"', 1))
    with pytest.raises(SpecError, match=r"^triton_version: got '22\.12', expected an NGC Triton release"):
        load_project(spec)
