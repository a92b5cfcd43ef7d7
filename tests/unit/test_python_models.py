"""Python-backend models run the repository's model.py as the serving user: ``check`` says so with a finding,
``serve`` with a line at start (issue 10, item 17)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tritonize.cli.serve import python_models_line
from tritonize.core.check import check_repository
from tritonize.core.check.rules import python_backend_models

REPOS = Path(__file__).resolve().parents[1] / "check_repos"
CODE = 'import os\n\n\nclass TritonPythonModel:\n    def execute(self, requests):\n        return []\n'
CONFIG = ('{head}max_batch_size: 8\ninput [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n'
          'output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n')


def _python_model(root: Path, name: str, source: str = CODE, versions: tuple[int, ...] = (1,),
                  head: str = 'backend: "python"\n') -> Path:
    model = root / name
    for v in versions:
        (model / str(v)).mkdir(parents=True)
        (model / str(v) / "model.py").write_text(source)
    (model / "config.pbtxt").write_text(CONFIG.format(head=head))
    return model


def _codes(repo: Path) -> list[tuple[str, str, str]]:
    return [(f.model, f.code, f.severity) for f in check_repository(repo)]


def test_python_model_is_reported(tmp_path: Path) -> None:
    _python_model(tmp_path, "py")
    [finding] = check_repository(tmp_path)
    assert (finding.model, finding.code, finding.severity) == ("py", "python-model-code", "warning")
    assert finding.message == ("model.py of version 1 runs as the serving user's code with that user's rights "
                               "(python backend): review it before serving")


def test_every_loaded_version_is_named(tmp_path: Path) -> None:
    model = _python_model(tmp_path, "py", versions=(1, 2), head='backend: "python"\n'
                          'version_policy: { all: {} }\n')
    messages = sorted(f.message for f in check_repository(tmp_path))
    assert [m.split(" runs ")[0] for m in messages] == ["model.py of version 1", "model.py of version 2"]
    (model / "config.pbtxt").write_text(CONFIG.format(head='backend: "python"\n'))  # latest: version 2 only
    [finding] = check_repository(tmp_path)
    assert finding.message.startswith("model.py of version 2 ")


def test_default_model_filename_is_the_file_named(tmp_path: Path) -> None:
    model = _python_model(tmp_path, "py", head='backend: "python"\ndefault_model_filename: "serve.py"\n')
    (model / "1" / "model.py").rename(model / "1" / "serve.py")
    [finding] = check_repository(tmp_path)
    assert finding.code == "python-model-code" and finding.message.startswith("serve.py of version 1 ")


def test_autodetected_python_model_is_reported(tmp_path: Path) -> None:
    _python_model(tmp_path, "py", head="")  # neither backend nor platform: core finds 1/model.py
    assert ("py", "python-model-code", "warning") in _codes(tmp_path)


@pytest.mark.parametrize("source", ["", "\n\n", "# stand-in: only needs to exist\n", '"""A docstring."""\n'])
def test_a_model_py_that_runs_nothing_is_not_reported(tmp_path: Path, source: str) -> None:
    _python_model(tmp_path, "py", source=source)
    assert "python-model-code" not in [code for _, code, _ in _codes(tmp_path)]


def test_unparsable_model_py_is_still_reported(tmp_path: Path) -> None:
    _python_model(tmp_path, "py", source="def (:\n")
    assert ("py", "python-model-code", "warning") in _codes(tmp_path)


def test_onnx_and_pytorch_models_are_not_reported() -> None:
    found = check_repository(REPOS / "valid")  # classifier_onnx, classifier_ts, an ensemble
    assert found == []
    assert python_backend_models(REPOS / "valid") == []


def test_onnx_model_with_a_stray_model_py_is_not_reported(tmp_path: Path) -> None:
    shutil.copytree(REPOS / "valid", tmp_path / "repo")
    (tmp_path / "repo" / "classifier_onnx" / "1" / "model.py").write_text(CODE)
    (tmp_path / "repo" / "classifier_ts" / "1" / "model.py").write_text(CODE)
    assert check_repository(tmp_path / "repo") == []
    assert python_backend_models(tmp_path / "repo") == []


def test_python_backend_models_names_them(tmp_path: Path) -> None:
    shutil.copytree(REPOS / "valid", tmp_path / "repo")
    repo = tmp_path / "repo"
    _python_model(repo, "zeta")
    _python_model(repo, "alpha", head="")  # auto-detected from 1/model.py
    (repo / "noconfig" / "1").mkdir(parents=True)
    (repo / "noconfig" / "1" / "model.py").write_text(CODE)  # no config.pbtxt: auto-completed
    assert python_backend_models(repo) == ["alpha", "noconfig", "zeta"]
    assert python_backend_models(tmp_path / "missing") == []


def test_case_repository_is_one_python_model() -> None:
    assert python_backend_models(REPOS / "python_model_code") == ["m"]


def test_serve_line_names_the_models_and_the_uid() -> None:
    line = python_models_line(["pre", "post"], 1000)
    assert line is not None and "\n" not in line
    assert "python-backend models pre, post" in line and "uid 1000" in line and "root" not in line
    assert "review it before serving" in line


def test_serve_line_says_root() -> None:
    line = python_models_line(["pre"], 0)
    assert line is not None and "python-backend model pre runs its model.py" in line
    assert "and this server runs as root" in line


def test_serve_line_in_a_container_and_without_python_models() -> None:
    line = python_models_line(["pre"], None)
    assert line is not None and "container" in line and "root" not in line
    assert python_models_line([], 0) is None and python_models_line([], 1000) is None
