"""Builds that keep what passed (issue 12, problem 3): a format that fails is reported and the formats that
passed are written (nothing with all-or-nothing); an optimized format whose FP32 base failed is skipped; and
``overwrite`` without a version replaces the latest version instead of adding one (problem 6)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from tritonize.cli import main
from tritonize.core.check import check_repository
from tritonize.generator.build import build
from tritonize.generator.errors import ExportError
from tritonize.generator.request import ModelRequest
from tritonize.generator.writer import MANIFEST, existing_versions, sha256

HERE = Path(__file__)
TOY = str(HERE.parent / "toy_models.py")


class TraceRefused(nn.Module):
    """Exports to ONNX, but refuses torch.jit.trace (as models with Python-side checks do)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            raise RuntimeError("this model cannot be traced to TorchScript")
        return self.lin(features)


def trace_refused() -> tuple[nn.Module, torch.Tensor]:
    return TraceRefused(), torch.randn(2, 4)


def request(**overrides: object) -> ModelRequest:
    fields: dict[str, object] = dict(name="m", source=f"{HERE}:trace_refused", max_batch_size=8, version=1,
                                     formats=("torchscript-int8", "onnx", "torchscript"))
    fields.update(overrides)
    return ModelRequest(**fields)  # type: ignore[arg-type]


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def test_a_failing_format_keeps_the_formats_that_passed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match=r"torchscript export \(trace\) failed: .*cannot be traced"):
        build([request()], repo)
    build([request(formats=("onnx",))], tmp_path / "alone")
    # m_onnx, byte for byte what a build of it alone writes; its manifest records the request's formats
    written, alone = tree(repo), tree(tmp_path / "alone")
    assert written.pop(f"m_onnx/{MANIFEST}") and alone.pop(f"m_onnx/{MANIFEST}")
    assert written == alone and "m_onnx/1/model.onnx" in written
    assert sorted(p.name for p in repo.iterdir()) == ["m_onnx"]
    entries = [json.loads((root / "m_onnx" / MANIFEST).read_text()) for root in (repo, tmp_path / "alone")]
    for entry in entries:
        entry["versions"]["1"]["request"].pop("formats")
    assert entries[0] == entries[1]
    assert check_repository(repo) == []

    results = build([request()], tmp_path / "again", raise_on_failure=False)
    assert [(r.name, r.action) for r in results] == [
        ("m_torchscript_int8", "skipped"), ("m_onnx", "new"), ("m_torchscript", "failed")]
    skipped, onnx, failed = results
    assert str(skipped.error) == "its FP32 base m_torchscript failed"
    assert isinstance(failed.error, ExportError) and failed.report is None and failed.sha256 == ""
    assert onnx.error is None and onnx.report is not None and onnx.sha256 == sha256(repo / "m_onnx/1/model.onnx")


def test_all_or_nothing_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match="cannot be traced"):
        build([request()], repo, all_or_nothing=True)
    assert tree(repo) == {}
    results = build([request()], repo, all_or_nothing=True, raise_on_failure=False)
    assert [r.action for r in results] == ["skipped", "discarded", "failed"]
    assert tree(repo) == {}


def test_a_model_that_fails_to_load_keeps_the_other_models(tmp_path: Path) -> None:
    results = build([ModelRequest("bad", f"{TOY}:raises", max_batch_size=8, version=1, formats=("onnx",)),
                     request(formats=("onnx",))], tmp_path, raise_on_failure=False)
    assert [(r.name, r.action) for r in results] == [("bad_onnx", "failed"), ("m_onnx", "new")]
    assert "weights file not found" in str(results[0].error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_onnx"]


def test_cli_reports_each_failure_and_exits_1(tmp_path: Path) -> None:
    args = ["export", f"{HERE}:trace_refused", "--name", "m", "--max-batch-size", "8",
            "--format", "onnx", "--format", "torchscript", "--format", "torchscript-int8"]
    result = CliRunner().invoke(main, [*args, "--repo", str(tmp_path / "repo")])
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("[m_torchscript] torchscript failed: torchscript export (trace) failed")
               for line in lines), lines
    assert "[m_torchscript_int8] torchscript-int8 skipped: its FP32 base m_torchscript failed" in lines
    assert any(line.startswith("[m_onnx] version 1: new in") for line in lines)
    assert lines[-1].startswith("error: torchscript export (trace) failed")
    assert re.search(r"^m_torchscript +torchscript +1 +failed +torchscript export", result.stdout, re.M)  # table
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m_onnx"]

    result = CliRunner().invoke(main, [*args, "--repo", str(tmp_path / "none"), "--all-or-nothing"])
    assert result.exit_code == 1
    assert "[m_onnx] onnx not written: another format failed (all or nothing)" in result.stderr.splitlines()
    assert tree(tmp_path / "none") == {}


def test_a_spec_error_stops_everything(tmp_path: Path) -> None:
    # the labels file is read while staging the first format: a usage error, nothing is written
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(Exception, match="labels: got '2 labels', expected 3"):
        build([request(formats=("onnx", "torchscript"), labels=labels)], tmp_path / "repo")
    assert tree(tmp_path / "repo") == {}


def mlp(seed: int, version: int | None = None) -> ModelRequest:
    return ModelRequest("mlp", f"{TOY}:mlp", kwargs={"seed": seed}, max_batch_size=8, version=version,
                        formats=("onnx",))


def test_overwrite_without_a_version_replaces_the_latest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    build([mlp(0)], tmp_path)
    build([mlp(1)], tmp_path)  # without overwrite: a new version
    assert existing_versions(tmp_path / "mlp_onnx") == [1, 2]
    v1 = tree(tmp_path / "mlp_onnx" / "1")
    with caplog.at_level(logging.INFO, logger="tritonize"):
        [built] = build([mlp(2)], tmp_path, overwrite=True)
    assert (built.version, built.action) == (2, "replace-version")
    assert existing_versions(tmp_path / "mlp_onnx") == [1, 2]
    assert tree(tmp_path / "mlp_onnx" / "1") == v1
    assert built.sha256 == sha256(tmp_path / "mlp_onnx/2/model.onnx")
    assert any(r.getMessage().startswith("[mlp_onnx] replaced version 2 in") for r in caplog.records)
    # an explicit version is replaced as before; a first build is version 1
    [again] = build([dataclasses.replace(mlp(3), version=1)], tmp_path, overwrite=True)
    assert (again.version, again.action) == (1, "replace-version")
    [first] = build([mlp(0)], tmp_path / "fresh", overwrite=True)
    assert (first.version, first.action) == (1, "new")


def test_overwrite_help_says_what_it_replaces() -> None:
    for command in ("export", "build"):
        result = CliRunner().invoke(main, [command, "--help"])
        text = " ".join(result.stdout.split())
        assert "--version, else the latest one" in text and "--all-or-nothing" in text, command
