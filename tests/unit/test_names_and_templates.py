"""Names refuse a trailing newline (one-line messages); user templates render in Jinja's sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonize.generator.config_spec import ModelConfigSpec, TensorConfig
from tritonize.generator.errors import SpecError, TritonizeError
from tritonize.generator.io_spec import DeclaredTensor
from tritonize.generator.render import render_config
from tritonize.generator.request import ModelRequest

BUILTIN = Path(__file__).parent.parent.parent / "generator" / "templates" / "config.pbtxt.j2"
X = TensorConfig("x", "TYPE_FP32", (4,))
Y = TensorConfig("y", "TYPE_FP32", (2,))


def spec(**overrides: object) -> ModelConfigSpec:
    fields: dict[str, object] = dict(name="m_onnx", backend="onnxruntime", max_batch_size=8,
                                     inputs=(X,), outputs=(Y,))
    fields.update(overrides)
    return ModelConfigSpec(**fields)  # type: ignore[arg-type]


def refused(make: object, field: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        make()  # type: ignore[operator]
    assert info.value.field.startswith(field)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("value", ["digits\n", "di\ngits"])
def test_model_name_refuses_newline(value: str) -> None:
    refused(lambda: ModelRequest(name=value, source="m:f"), "name")


def test_default_model_filename_refuses_trailing_newline() -> None:
    refused(lambda: spec(default_model_filename="model.onnx\n"), "default_model_filename")


def test_output_name_refuses_trailing_newline() -> None:
    refused(lambda: TensorConfig("y\n", "TYPE_FP32", (2,)), "name")


@pytest.mark.parametrize("value", ["ids\n", "i\nds"])
def test_input_name_refuses_newline(value: str) -> None:
    refused(lambda: DeclaredTensor(value), "inputs")


ESCAPES = [
    "{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}",
    "{{% for c in ''.__class__.__mro__[1].__subclasses__() %}}{{% if c.__name__ == 'Popen' %}}"
    "{{{{ c(['touch', '{marker}']) }}}}{{% endif %}}{{% endfor %}}",
    "{{{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch {marker}') }}}}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_template_escape_is_refused(tmp_path: Path, escape: str) -> None:
    marker = tmp_path / "pwned"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "config.pbtxt.j2").write_text(
        BUILTIN.read_text() + "\n# " + escape.format(marker=marker) + "\n")
    with pytest.raises(TritonizeError) as info:
        render_config(spec(), templates)
    assert "\n" not in str(info.value)
    assert not marker.exists()
