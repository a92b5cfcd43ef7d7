"""The CLI: help works, bad input ends in one line + exit code 2/1 with nothing written, and rebuilding the
example repository gives identical bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritonize.cli import main

ROOT = Path(__file__).parents[2]
TOY = str(Path(__file__).parent / "toy_models.py")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_and_client_import_without_torch() -> None:
    code = "import sys, tritonize.client, tritonize.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_has_help_with_an_example() -> None:
    for command in ("export", "build", "check"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "Example:" in out and f"tritonize {command}" in out


def test_export_writes_a_repository(tmp_path: Path) -> None:
    code, out, err = run("export", f"{TOY}:mlp", "--name", "toy", "--repo", str(tmp_path), "--max-batch-size", "16",
                         "--dynamic-batching", "--max-queue-delay-us", "500", "--instances", "2", "--kind", "gpu",
                         "--onnx-param", "intra_op_thread_count=1", "--version", "3")
    assert code == 0, err
    assert "toy_onnx" in out and "toy_torchscript" in out and "cosine" in out
    text = (tmp_path / "toy_onnx/config.pbtxt").read_text()
    assert "max_queue_delay_microseconds: 500" in text and "count: 2" in text and "KIND_GPU" in text
    assert (tmp_path / "toy_onnx/3/model.onnx").is_file() and (tmp_path / "toy_torchscript/3/model.pt").is_file()
    code, _, err = run("check", str(tmp_path))
    assert code == 0 and "0 error(s), 0 warning(s)" in err


BAD = [  # (callable in toy_models.py, extra arguments, exit code, words the error line must contain)
    ("mlp", ["--input", "features:float33:4"], 2, ["inputs.features.dtype", "float33"]),
    ("mlp", ["--max-batch-size", "-1"], 2, ["max_batch_size", "-1", ">= 0"]),
    ("mlp", ["--instances", "0", "--kind", "gpu"], 2, ["instance_group.count", "0"]),
    ("mlp", ["--dynamic-batching", "--preferred-batch-size", "0"], 2, ["preferred_batch_size", "0"]),
    ("mlp", ["--dynamic-batching", "--max-queue-delay-us", "-5"], 2, ["max_queue_delay_microseconds", "-5"]),
    ("mlp", ["--name", "a/b"], 2, ["name", "'a/b'"]),
    ("mlp", ["--name", ".."], 2, ["name", "'..'"]),
    ("mlp", ["--name", 'x"y'], 2, ["name", 'x"y']),
    ("mlp", ["--name", "my model"], 2, ["name", "'my model'"]),
    ("mlp", ["--format", "tensorrt"], 2, ["--format", "tensorrt"]),
    ("mlp", ["--input", "features:float32:5"], 2, ["inputs.features.dims", "[5]", "[4]"]),
    ("mlp", ["--onnx-param", "threads=2"], 2, ["onnx.parameters.threads", "intra_op_thread_count"]),
    ("nope", [], 2, ["source", "nope"]),
    ("raises", [], 1, ["raised RuntimeError", "weights file not found"]),
    ("unexportable", ["--format", "onnx"], 1, ["lost input 'x'"]),
    ("mixes_batch", [], 1, ["batch invariance"]),
]


@pytest.mark.parametrize(("fn", "args", "exit_code", "words"), BAD, ids=[f"{b[0]} {' '.join(b[1])}" for b in BAD])
def test_bad_input_one_line_exit_code_nothing_written(tmp_path: Path, fn: str, args: list[str], exit_code: int,
                                                      words: list[str]) -> None:
    name = [] if "--name" in args else ["--name", "toy"]
    code, _, err = run("export", f"{TOY}:{fn}", *name, "--repo", str(tmp_path / "repo"), *args)
    assert code == exit_code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    for word in words:
        assert word in last
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_check_exit_codes(tmp_path: Path) -> None:
    assert run("check", str(ROOT / "tests/check_repos/valid"))[0] == 0
    code, out, _ = run("check", str(ROOT / "tests/check_repos/fixed_batch_dim"))
    assert code == 1 and "fixed-batch-dim" in out
    warn = ROOT / "tests/check_repos/version_dir_ignored"
    assert run("check", str(warn))[0] == 0 and run("check", "--strict", str(warn))[0] == 1


def test_build_spec_error_exit_code(tmp_path: Path) -> None:
    spec = tmp_path / "tritonize.toml"
    spec.write_text('[models.m]\nsource = "toy_models:mlp"\nmax_batch_size = "8"\n')
    code, _, err = run("build", str(spec))
    assert code == 2 and "models.m.max_batch_size: got '8', expected an integer" in err


def _tree_digest(repo: Path) -> dict[str, str]:
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file()}


def test_rebuilding_the_example_repository_gives_identical_bytes(tmp_path: Path) -> None:
    spec = ROOT / "model_repository/tritonize.toml"
    cli = [sys.executable, "-c", "from tritonize.cli import main; main()"]
    builds = [subprocess.Popen([*cli, "build", str(spec), "--repo", str(tmp_path / name)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for proc in builds:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    first, second = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert first == second
    assert {"digits_onnx/1/model.onnx", "digits_torchscript/1/model.pt", "sequence_onnx/config.pbtxt",
            "sequence_torchscript/tritonize-manifest.json"} <= set(first)
