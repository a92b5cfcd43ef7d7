"""``exporter = "dynamo"``: the torch.export-based ONNX exporter builds, verifies and records itself; bad values
and models torch.export cannot capture fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from tritonize.generator.build import build
from tritonize.generator.errors import ExportError, SpecError
from tritonize.generator.project import load_project
from tritonize.generator.request import FormatOptions, ModelRequest
from tritonize.generator.source import ModelBundle

DYNAMO = FormatOptions(exporter="dynamo")


class MaskedMean(nn.Module):
    """Token ids and their mask, both of variable length (the two sequence dims must be equal)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embed(ids) * mask.unsqueeze(-1).float()
        pooled = tokens.sum(1) / mask.sum(1, keepdim=True).clamp(min=1).float()
        return self.head(pooled), tokens


def _token_batch(size: int, seed: int) -> dict[str, torch.Tensor]:
    """Random ids (the INT8 gate needs predictions that vary), 4-8 tokens, the last one masked."""
    ids = torch.randint(0, 30, (size, 4 + seed % 5), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[:, -1] = 0
    return {"ids": ids, "mask": mask}


def masked_mean() -> ModelBundle:
    torch.manual_seed(0)
    return ModelBundle(MaskedMean(), _token_batch(2, 6), input_dims={"ids": [-1], "mask": [-1]},
                       output_names=["logits", "tokens"], sample_inputs=_token_batch)


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.export refuses it
            return x * 2
        return x - 1


def branchy() -> tuple[nn.Module, torch.Tensor]:
    return Branchy(), torch.ones(2, 4)


def request(formats: tuple[str, ...] = ("onnx",), **options: FormatOptions) -> ModelRequest:
    return ModelRequest("masked", "test_dynamo_export:masked_mean", formats=formats, max_batch_size=8, version=1,
                        format_options=options or {"onnx": DYNAMO})


def test_dynamo_builds_a_variable_length_model_that_verifies_and_loads(tmp_path: Path) -> None:
    (built,) = build([request()], tmp_path / "a")
    version = tmp_path / "a" / "masked_onnx" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx"]  # no external-data file beside it
    assert built.report.method == "torch.export"
    assert built.report.batch_sizes == [1, 3, 8]
    assert all(p.max_abs < 1e-5 for p in built.report.outputs)
    proto = onnx.load(str(version / "model.onnx"))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {"ids": ["batch", "ids_dim1"], "mask": ["batch", "ids_dim1"]}  # one symbol for equal dims
    assert not any(n.metadata_props for n in proto.graph.node)  # no stack traces (absolute paths) in the bytes
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.arange(33, dtype=np.int64).reshape(3, 11) % 30
    logits, tokens = session.run(None, {"ids": ids, "mask": np.ones_like(ids)})
    with torch.inference_mode():
        expected = masked_mean().model(torch.from_numpy(ids), torch.ones(3, 11, dtype=torch.int64))
    np.testing.assert_allclose(logits, expected[0].numpy(), atol=1e-5)
    assert tokens.shape == (3, 11, 8)
    entry = json.loads((version.parent / "tritonize-manifest.json").read_text())["versions"]["1"]
    assert entry["export"]["exporter"] == "torch.onnx.export (torch.export-based, dynamo)"
    assert entry["export"]["opset"] == 18
    assert entry["request"]["onnx"] == {"exporter": "dynamo"}
    (again,) = build([request()], tmp_path / "b")  # the same bytes from a second export
    assert again.sha256 == built.sha256


def test_onnx_int8_quantizes_the_dynamo_export(tmp_path: Path) -> None:
    int8 = FormatOptions(exporter="dynamo", accuracy_budget=100.0)
    built = build([request(("onnx-int8",), **{"onnx-int8": int8})], tmp_path)
    entry = json.loads((tmp_path / "masked_onnx_int8" / "tritonize-manifest.json").read_text())["versions"]["1"]
    assert entry["export"]["exporter"] == "torch.onnx.export (torch.export-based, dynamo)"
    assert entry["export"]["method"] == "int8 dynamic" and built[0].optimization is not None


@pytest.mark.parametrize("make, words", [
    (lambda: FormatOptions(exporter="onnxscript"), ["exporter", "'onnxscript'", "'torchscript' or 'dynamo'"]),
    (lambda: request(("torchscript",), torchscript=DYNAMO), ["torchscript.exporter", "'dynamo'", "onnx"]),
    (lambda: ModelRequest("m", "toy_models:mlp", formats=("onnx",), script=True, format_options={"onnx": DYNAMO}),
     ["onnx.exporter", "script = true"]),
])
def test_bad_exporter_is_one_spec_error_line(make: object, words: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        make()  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_exporter_key_in_the_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "tritonize.toml"
    spec.write_text('[models.m]\nsource = "toy_models:mlp"\nformats = ["onnx", "onnx-int8"]\n'
                    '[models.m.onnx]\nexporter = "dynamo"\n[models.m.onnx-int8]\nexporter = "dynamo"\n')
    (m,) = load_project(spec).models
    assert (m.options("onnx").exporter, m.options("onnx-int8").exporter) == ("dynamo", "dynamo")
    spec.write_text('[models.m]\nsource = "toy_models:mlp"\n[models.m.onnx]\nexporter = "jit"\n')
    with pytest.raises(SpecError, match=r"models\.m\.onnx\.exporter.*'jit'"):
        load_project(spec)


@pytest.mark.parametrize("source, words", [
    ("test_dynamo_export:branchy", ["GuardOnDataDependentSymNode"]),  # torch.export refuses it
    ("toy_models:branchy", ["limited input x dim 1 to [0, 4]"]),  # exported, but only right for lengths <= 4
])
def test_a_model_torch_export_cannot_capture_is_one_export_error_line(tmp_path: Path, source: str,
                                                                      words: list[str]) -> None:
    req = ModelRequest("branchy", source, formats=("onnx",), format_options={"onnx": DYNAMO})
    with pytest.raises(ExportError) as info:
        build([req], tmp_path)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message, message
    assert all(w in message for w in ["exporter 'dynamo'", "exporter = 'torchscript'", *words]), message
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_build_exports_onnx_once_and_never_runs_the_eager_model_twice_on_a_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build-time waste (benchmarks/results/build_time.md): onnx-int8 quantizes the onnx format's own export,
    and the three verifications and the INT8 gates reuse the eager model's outputs for a batch they share."""
    from tritonize.generator.source import load_source

    exports: list[str] = []
    real_export = torch.onnx.export

    def counting_export(*args: object, **kwargs: object) -> object:
        exports.append(str(args[2]))
        return real_export(*args, **kwargs)  # type: ignore[arg-type]

    batches: list[tuple[object, ...]] = []

    def hooked_load(*args: object, **kwargs: object) -> object:
        loaded = load_source(*args, **kwargs)  # type: ignore[arg-type]
        loaded.module.register_forward_hook(  # after loading: the build's own runs
            lambda _, inputs, __: batches.append(tuple((tuple(t.shape), t.numpy().tobytes()) for t in inputs)))
        return loaded

    monkeypatch.setattr(torch.onnx, "export", counting_export)
    monkeypatch.setattr("tritonize.generator.build.load_source", hooked_load)
    built = build([request(("onnx", "torchscript", "onnx-int8"), **{"onnx-int8": FormatOptions(accuracy_budget=100.0)})],
                  tmp_path)
    assert [b.action for b in built] == ["new"] * 3
    assert len(exports) == 1, exports
    assert batches and len(set(batches)) == len(batches), f"{len(batches) - len(set(batches))} repeated eager runs"


def test_the_export_command_takes_the_exporter(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tritonize.cli import main

    result = CliRunner().invoke(main, ["export", "toy_models:mlp", "--name", "m", "--format", "onnx", "--exporter",
                                      "dynamo", "--repo", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "repo" / "m_onnx" / "tritonize-manifest.json").read_text())["versions"]["1"]
    assert entry["export"]["exporter"] == "torch.onnx.export (torch.export-based, dynamo)"
    assert entry["request"]["onnx"]["exporter"] == "dynamo"
