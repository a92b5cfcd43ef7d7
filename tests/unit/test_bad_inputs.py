"""Bad inputs of issue 10 (items 7, 8, 9, 11): each ends in exactly one ``error: ...`` line on stderr naming the
field, tensor or file and the value, the usage (2) or failure (1) exit code, no traceback, and an unchanged
repository. Nothing here needs a server: the errors happen before connecting (``--url 127.0.0.1:1``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from tritonize.cli import main
from tritonize.client import InvalidInputError, ModelInfo, TritonClient, UsageError

TOY = str(Path(__file__).parent / "toy_models.py")
DEAD = ["--url", "127.0.0.1:1"]  # nothing listens there: the error must come before any connection
CONFIG = {"name": "m", "max_batch_size": 4,
          "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}],
          "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}]}


def tree(repo: Path) -> dict[str, str]:
    """The repository's files and their sha256."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file()}


PROGRESS = re.compile(r"^\[[\w.-]+\] ")  # build's INFO lines ("[m] loading ..."): progress, not the error


def assert_one_line(result: Result, exit_code: int, words: tuple[str, ...]) -> str:
    """The exit code, and stderr ends in exactly one ``error: `` line (after build progress lines, if any)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stderr.splitlines()[-1] == lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository holding one model (toy_onnx), and a TorchScript file of the same MLP."""
    import torch
    import toy_models

    root = tmp_path_factory.mktemp("built")
    result = CliRunner().invoke(main, ["export", f"{TOY}:mlp", "--name", "toy", "--format", "onnx",
                                       "--repo", str(root / "repo")])
    assert result.exit_code == 0, result.stderr
    model, example = toy_models.mlp()
    torch.jit.trace(model.eval(), example).save(str(root / "mlp.pt"))
    return root / "repo", root / "mlp.pt"


@dataclass
class Env:
    tmp: Path
    repo: Path
    pt: Path

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def objects(self, name: str) -> str:
        """An .npy or .npz holding an object array (only loadable by unpickling)."""
        path = self.tmp / name
        array = np.array([{"a": 1}, None], dtype=object)
        if name.endswith(".npz"):
            np.savez(path, features=array)
        else:
            np.save(path, array, allow_pickle=True)
        return str(path)

    def spec(self, body: str) -> str:
        return self.file("tritonize.toml", f'repository = "{self.repo}"\n[models.m]\n{body}\n')


@dataclass
class Case:
    id: str
    args: Callable[[Env], list[str]]
    exit_code: int
    words: tuple[str, ...]


def export(env: Env, source: str, *args: str) -> list[str]:
    return ["export", source, "--name", "m", "--repo", str(env.repo), *args]


RETURNS_42 = "def build():\n    return 42\n"
EXITS = "import sys\n\ndef build():\n    sys.exit(0)\n"
EXITS_ON_IMPORT = "import sys\nsys.exit(3)\n\ndef build():\n    pass\n"

CASES = [
    # item 7: files and values that used to end in a traceback
    Case("example_inputs missing (spec)", lambda e: ["build", e.spec(f'source = "{e.pt}"\n'
                                                                      'example_inputs = "missing.npz"')],
         2, ("example_inputs", "missing.npz")),
    Case("example_inputs object .npz", lambda e: export(e, str(e.pt), "--example-inputs", e.objects("obj.npz")),
         2, ("example_inputs", "obj.npz")),
    Case("example_inputs object .npy", lambda e: export(e, str(e.pt), "--example-inputs", e.objects("obj.npy")),
         2, ("example_inputs", "obj.npy")),
    Case("infer --input object .npy", lambda e: ["infer", "m", "--input", f"x={e.objects('obj.npy')}", *DEAD],
         2, ("--input x", "obj.npy")),
    Case("bench --input-data object .npz",
         lambda e: ["bench", "m", "--concurrency", "1", "--engine", "builtin", "--input-data", e.objects("obj.npz"),
                    *DEAD], 2, ("--input-data", "obj.npz")),
    Case("bench --input-data missing", lambda e: ["bench", "m", "--concurrency", "1", "--engine", "builtin",
                                                  "--input-data", str(e.tmp / "missing.npz"), *DEAD],
         2, ("--input-data", "missing.npz")),
    Case("name of 300 characters", lambda e: ["export", f"{TOY}:mlp", "--name", "a" * 300, "--repo", str(e.repo)],
         2, ("name", "a" * 300, "255")),
    Case("bench url [::1", lambda e: ["bench", "m", "--concurrency", "1", "--url", "http://[::1"],
         2, ("url", "http://[::1")),
    Case("repo is a file", lambda e: export(e, f"{TOY}:mlp", "--repo", e.file("repo.txt", "x")),
         2, ("repo", "repo.txt")),
    Case("repo under a file (OSError)", lambda e: export(e, f"{TOY}:mlp", "--repo", e.file("repo.txt", "x") + "/sub"),
         1, ("NotADirectoryError", "repo.txt/sub")),
    # item 8: source errors, one line (not a Python tuple)
    Case("unknown module", lambda e: export(e, "no_such_module_xyz:build"), 2, ("source", "no_such_module_xyz")),
    Case("missing file", lambda e: export(e, f"{e.tmp / 'missing.py'}:build"), 2, ("source", "missing.py:build")),
    Case("unknown function", lambda e: export(e, f"{TOY}:no_such_function"), 2, ("source", "no_such_function")),
    Case("bad kwargs", lambda e: export(e, f"{TOY}:mlp", "--kwarg", "bogus=1"), 2, ("source kwargs", "bogus")),
    Case("returns 42", lambda e: export(e, f"{e.file('r42.py', RETURNS_42)}:build"),
         2, ("source", "r42.py:build", "returned int")),
    # item 9: sys.exit in the user's code is a failure, not a success
    Case("source calls sys.exit(0)", lambda e: export(e, f"{e.file('exits.py', EXITS)}:build"),
         1, ("exits.py:build", "sys.exit(0)")),
    Case("source sys.exit(3) on import", lambda e: export(e, f"{e.file('exits_on_import.py', EXITS_ON_IMPORT)}:build"),
         1, ("exits_on_import.py:build", "sys.exit(3)")),
    # item 11: accepted nonsense
    Case("max_batch_size 1000000", lambda e: export(e, f"{TOY}:mlp", "--max-batch-size", "1000000"),
         2, ("max_batch_size", "1000000", "65536")),
    Case("max_batch_size 2**31", lambda e: export(e, f"{TOY}:mlp", "--max-batch-size", str(2**31)),
         2, ("max_batch_size", "2147483648")),
    Case("max_batch_size 2**31 (spec)", lambda e: ["build", e.spec(f'source = "{TOY}:mlp"\nmax_batch_size = {2**31}')],
         2, ("models.m.max_batch_size", "2147483648")),
    Case("bench --batch-size 0", lambda e: ["bench", "m", "--concurrency", "1", "--batch-size", "0", *DEAD],
         2, ("--batch-size", "0")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_bad_input_is_one_line(case: Case, built: tuple[Path, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITONIZE_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "repo"
    shutil.copytree(built[0], repo)
    before = tree(repo)
    result = CliRunner().invoke(main, case.args(Env(tmp_path, repo, built[1])))
    assert_one_line(result, case.exit_code, case.words)
    assert tree(repo) == before


def test_os_error_is_reraised_with_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITONIZE_DEBUG", "1")
    (tmp_path / "repo.txt").write_text("x")
    result = CliRunner().invoke(main, ["export", f"{TOY}:mlp", "--name", "m", "--repo",
                                       str(tmp_path / "repo.txt/sub")])
    assert isinstance(result.exception, OSError)


def test_a_bug_still_shows_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only tritonize's errors and OSError become one line: anything else is a bug and keeps its traceback."""
    import tritonize.generator.build

    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.delenv("TRITONIZE_DEBUG", raising=False)
    monkeypatch.setattr(tritonize.generator.build, "build", boom)
    result = CliRunner().invoke(main, ["export", f"{TOY}:mlp", "--name", "m", "--repo", str(tmp_path / "repo")])
    assert isinstance(result.exception, ZeroDivisionError)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root needs setpriv to drop to nobody")
def test_read_only_repository_is_one_line(built: tuple[Path, Path]) -> None:
    """As a user who cannot write the repository (as root: nobody, via setpriv; root writes through modes)."""
    work = Path(tempfile.mkdtemp(prefix="tritonize-ro-"))  # not under pytest's 0700 tmp: nobody must reach it
    try:
        work.chmod(0o755)
        repo = work / "repo"
        shutil.copytree(built[0], repo)
        before = tree(repo)
        for path in (repo, *repo.rglob("*")):
            if path.is_dir():
                path.chmod(0o555)
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        env = {**os.environ, "HOME": str(work), "TRITONIZE_DEBUG": ""}
        run = subprocess.run([*user, sys.executable, "-c", "from tritonize.cli import main; main()", "export",
                              f"{TOY}:mlp", "--name", "toy", "--format", "torchscript", "--repo", str(repo)],
                             capture_output=True, text=True, env=env, cwd=work, timeout=300)
        assert run.returncode == 1, run.stderr
        lines = [line for line in run.stderr.splitlines() if not PROGRESS.match(line)]
        assert len(lines) == 1 and lines[0].startswith(f"error: repository {repo}: not writable"), run.stderr
        assert "Traceback" not in run.stderr and tree(repo) == before
    finally:
        for path in (work, *work.rglob("*")):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)


# --- the Python API -----------------------------------------------------------------------------------------


def test_client_url_is_one_line_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        TritonClient("http://[::1")
    text = str(caught.value)
    assert "\n" not in text and "url" in text and "http://[::1" in text


def _sync_model() -> tuple[TritonClient, object]:
    from tritonize.client.client import ModelClient

    triton = TritonClient("127.0.0.1:1", timeout_s=1, retry=None)
    return triton, ModelClient(triton, ModelInfo.from_config(CONFIG))


EMPTY = {"x": np.zeros((0, 3), np.float32)}


@pytest.mark.parametrize("method", ["infer", "infer_batch"])
def test_empty_batch_is_refused_before_triton(method: str) -> None:
    triton, model = _sync_model()
    try:
        with pytest.raises(InvalidInputError) as caught:
            getattr(model, method)(EMPTY)
        text = str(caught.value)
        assert "\n" not in text and "'x'" in text and "0 samples" in text
    finally:
        triton.close()


@pytest.mark.parametrize("method", ["infer", "infer_batch"])
def test_empty_batch_is_refused_before_triton_asyncio(method: str) -> None:
    from tritonize.client.aio import AsyncModelClient, AsyncTritonClient

    async def call() -> str:
        async with AsyncTritonClient("127.0.0.1:1", timeout_s=1, retry=None) as triton:
            model = AsyncModelClient(triton, ModelInfo.from_config(CONFIG))
            with pytest.raises(InvalidInputError) as caught:
                await getattr(model, method)(EMPTY)
            return str(caught.value)

    text = asyncio.run(call())
    assert "\n" not in text and "'x'" in text and "0 samples" in text
