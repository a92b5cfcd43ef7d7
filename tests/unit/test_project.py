"""tritonize.toml: the example spec loads as intended; every wrong key or type names its full path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonize.generator.errors import SpecError
from tritonize.generator.project import load_project

ROOT = Path(__file__).parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tritonize.toml"
    path.write_text(text)
    return path


def test_example_spec() -> None:
    project = load_project(ROOT / "model_repository/tritonize.toml")
    assert project.repository == ROOT / "model_repository" / "."
    digits, sequence, reviews, glyphs = project.models
    assert (digits.name, digits.formats, digits.max_batch_size, digits.version) == (
        "digits", ("onnx", "torchscript", "onnx-int8"), 64, 1)
    quantization = digits.options("onnx-int8").quantization
    assert quantization is not None and quantization.method == "static"
    assert digits.dynamic_batching is not None and digits.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.kind, g.count) for g in digits.instance_group] == [("KIND_GPU", 1)]
    assert digits.options("onnx").parameters == {"intra_op_thread_count": "1", "inter_op_thread_count": "1"}
    assert sequence.source.endswith("sequence:build_sequence_classifier")
    assert (reviews.formats, glyphs.formats) == (("onnx", "torchscript"), ("onnx", "torchscript"))


def test_full_model_table(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\nb\n")
    project = load_project(write(tmp_path, """
repository = "out"
[models.m]
source = "toy_models:mlp"
kwargs = { seed = 3 }
formats = ["onnx"]
max_batch_size = 16
inputs = { features = { dtype = "float32", dims = [4], range = [0, 5] } }
outputs = ["scores"]
instance_group = [{ kind = "cpu", count = 2 }]
version_policy = { specific = [1, 2] }
warmup_batch_sizes = [1]
response_cache = true
labels = "labels.txt"
[models.m.dynamic_batching]
preferred_batch_size = [8]
priority_levels = 2
default_priority_level = 1
default_queue_policy = { timeout_action = "DELAY", max_queue_size = 4 }
priority_queue_policy = { 2 = { default_timeout_microseconds = 100 } }
[models.m.onnx]
opset = 18
tolerance = { atol = 1e-3 }
optimization = { tensorrt = { precision_mode = "FP16", trt_engine_cache_enable = true }, graph_level = 1 }
"""))
    (m,) = project.models
    assert project.repository == tmp_path / "out"
    assert m.kwargs == {"seed": 3} and m.outputs == ("scores",) and m.labels == tmp_path / "labels.txt"
    assert m.inputs[0].range == (0, 5)
    assert m.dynamic_batching is not None and m.dynamic_batching.priority_queue_policy[2].default_timeout_microseconds == 100
    assert m.version_policy is not None and m.version_policy.versions == (1, 2)
    onnx = m.options("onnx")
    assert onnx.opset == 18 and onnx.tolerance is not None and onnx.tolerance.atol == 1e-3
    assert onnx.tolerance.rtol == 1e-3  # unspecified fields keep the format's default
    assert onnx.optimization.tensorrt is not None and onnx.optimization.tensorrt.trt_engine_cache_enable


@pytest.mark.parametrize(("text", "field"), [
    ('[models.m]\nsource = "a:b"\nbatch_size = 4', "models.m.batch_size"),
    ('[models.m]\nsource = "a:b"\nmax_batch_size = "64"', "models.m.max_batch_size"),
    ('[models.m]\nsource = "a:b"\nmax_batch_size = -2', "models.m.max_batch_size"),
    ('[models.m]\nsource = "a:b"\nformats = ["tensorrt"]', "models.m.formats"),
    ('[models.m]\nmax_batch_size = 4', "models.m.source"),
    ('[models."a/b"]\nsource = "a:b"', "models.a/b.name"),
    ('[models.m]\nsource = "a:b"\ninstance_group = [{ kind = "gpu", count = 0 }]', "models.m.instance_group"),
    ('[models.m]\nsource = "a:b"\ndynamic_batching = { max_delay = 5 }', "models.m.dynamic_batching.max_delay"),
    ('[models.m]\nsource = "a:b"\ninputs = { ids = { dtype = "int65" } }', "models.m.inputs.ids.dtype"),
    ('[models.m]\nsource = "a:b"\ninputs = { ids = { dims = [0] } }', "models.m.inputs.ids.dims"),
    ('[models.m]\nsource = "a:b"\nversion_policy = { newest = 1 }', "models.m.version_policy"),
    ('[models.m]\nsource = "a:b"\n[models.m.torchscript]\nopset = 17', "models.m.torchscript.opset"),
    ('[models.m]\nsource = "a:b"\n[models.m.onnx]\nparameters = { threads = "2" }', "models.m.onnx.parameters.threads"),
    ('[models.m]\nsource = "a:b"\n[models.m.onnx]\ntolerance = { atol = -1.0 }', "models.m.onnx.tolerance.atol"),
    ('[models.m]\nsource = "a:b"\n[models.m.onnx.optimization]\ncuda_graphs = true', "models.m.onnx.optimization"),
    ('repo = "x"', "repo"),
    ("[models]", "models"),
    ("models = [", "tritonize.toml"),
])
def test_spec_errors_name_the_path(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        load_project(write(tmp_path, text))
    assert info.value.field.startswith(field) or field in str(info.value)
    assert "\n" not in str(info.value)


def test_the_readme_spec_is_valid(tmp_path: Path) -> None:
    """The annotated tritonize.toml in the README loads: documentation that cannot rot silently."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index('repository = "."')
    spec = readme[start : readme.index("```", start)]
    for name in ("labels.txt",):
        (tmp_path / name).write_text("\n".join(str(i) for i in range(10)) + "\n")
    (m,) = load_project(write(tmp_path, spec)).models
    assert m.formats == ("onnx", "torchscript", "onnx-int8") and m.prune == 0.3
    q = m.options("onnx-int8").quantization
    assert q is not None and q.calibration == "entropy" and q.calibration_data == str(tmp_path / "calib.npz")
    assert m.options("onnx").optimization.tensorrt is not None
