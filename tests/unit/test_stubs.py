"""``tritonize client-stubs`` without a server: configs written by hand, the generated module read, and
``mypy --strict`` run on it and on code that uses it (right and wrong)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritonize.cli import main
from tritonize.client.errors import UsageError
from tritonize.client.stubs import argument_name, class_name, model_infos_from_repository, render_stubs, write_stubs

CLIENT = Path(__file__).parents[2] / "client"

CONFIGS = {
    "digits_onnx": """
        name: "digits_onnx"
        backend: "onnxruntime"
        max_batch_size: 64
        input [ { name: "image" data_type: TYPE_FP32 dims: [ 1, 8, 8 ] } ]
        output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" } ]
        dynamic_batching { max_queue_delay_microseconds: 500 }
        instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] }, { count: 1 kind: KIND_CPU } ]
    """,
    # no name: the directory's
    "sequence_torchscript": """
        platform: "pytorch_libtorch"
        max_batch_size: 16
        input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }, { name: "mask" data_type: TYPE_INT64 dims: [ -1 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
    """,
    "text_python": """
        name: "text_python"
        backend: "python"
        max_batch_size: 0
        input [
          { name: "text" data_type: TYPE_STRING dims: [ 1 ] },
          { name: "bias" data_type: TYPE_FP16 dims: [ 3 ] optional: true },
          { name: "class" data_type: TYPE_INT32 dims: [ 1 ] },
          { name: "input:0" data_type: TYPE_BOOL dims: [ 2, 2 ] }
        ]
        output [ { name: "out:0" data_type: TYPE_STRING dims: [ 1 ] }, { name: "ok" data_type: TYPE_BOOL dims: [ 1 ] } ]
    """,
}

GOOD_USAGE = """
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models import AsyncDigitsOnnx, DigitsOnnx, DigitsOnnxOutputs, SequenceTorchscript, TextPython
from tritonize.client import AsyncTritonClient, TritonClient


def call(client: TritonClient) -> NDArray[np.float32]:
    image: NDArray[np.float32] = np.zeros((2, 1, 8, 8), np.float32)
    digits = DigitsOnnx(client)
    out: DigitsOnnxOutputs = digits.infer(image=image, timeout_s=1.0, priority=1)
    one: NDArray[np.float32] = digits.infer_sample(image=image[0])["logits"]
    many: NDArray[np.float32] = digits.infer_batch(image=image, max_concurrency=2)["logits"]
    ids: NDArray[np.int64] = np.zeros((3, 5), np.int64)
    scores: NDArray[np.float32] = SequenceTorchscript(client).infer(ids=ids, mask=ids)["OUTPUT__0"]
    text = TextPython(client)
    flags: NDArray[np.bool_] = np.zeros((2, 2), np.bool_)
    result = text.infer(text=np.array([b"hello"], dtype=np.object_), class_=np.zeros(1, np.int32), input_0=flags)
    ok: NDArray[np.bool_] = result["ok"]
    words: NDArray[np.object_] = result["out:0"]
    text.infer(text=np.array(["hi"]), bias=np.zeros(3, np.float16), class_=np.zeros(1, np.int32), input_0=flags)
    assert ok.size and words.size and scores.size
    return out["logits"] + one + many


async def call_async(client: AsyncTritonClient) -> NDArray[np.float32]:
    digits = await AsyncDigitsOnnx.create(client, "1")
    image: NDArray[np.float32] = np.zeros((2, 1, 8, 8), np.float32)
    return (await digits.infer(image=image))["logits"] + (await digits.infer_sample(image=image[0]))["logits"]
"""

BAD_USAGE = """
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models import DigitsOnnx, TextPython
from tritonize.client import TritonClient


def call(client: TritonClient) -> None:
    wrong: NDArray[np.int64] = np.zeros((2, 1, 8, 8), np.int64)
    DigitsOnnx(client).infer(image=wrong)  # line 13: int64 where float32 is declared
    image: NDArray[np.float32] = np.zeros((2, 1, 8, 8), np.float32)
    DigitsOnnx(client).infer(images=image)  # line 15: no such input
    DigitsOnnx(client).infer(image=image)["probs"]  # line 16: no such output
    flags: NDArray[np.bool_] = np.zeros((2, 2), np.bool_)
    TextPython(client).infer_sample(text=np.array([b"a"]), class_=np.zeros(1, np.int32), input_0=flags)  # line 18
    TextPython(client).infer(text=np.array([b"a"]), input_0=flags)  # line 19: required input class_ missing
"""


def _repo(root: Path, configs: dict[str, str] = CONFIGS) -> Path:
    for model, text in configs.items():
        (root / model).mkdir(parents=True)
        (root / model / "config.pbtxt").write_text(text)
    (root / "not_a_model").mkdir()  # no config.pbtxt: skipped
    return root


@pytest.fixture
def stubs(tmp_path: Path) -> str:
    return render_stubs(model_infos_from_repository(_repo(tmp_path / "repo")), "model_repository/")


def test_repository_infos(tmp_path: Path) -> None:
    infos = model_infos_from_repository(_repo(tmp_path / "repo"))
    assert [i.name for i in infos] == ["digits_onnx", "sequence_torchscript", "text_python"]
    digits, sequence, text = infos
    assert digits.max_batch_size == 64 and digits.inputs[0].dims == (1, 8, 8)
    assert digits.outputs[0].label_filename == "labels.txt"
    assert [t.dims for t in sequence.inputs] == [(-1,), (-1,)]
    assert [t.optional for t in text.inputs] == [False, True, False, False]
    assert text.inputs[0].dtype.is_string


def test_class_and_argument_names() -> None:
    assert class_name("digits_onnx") == "DigitsOnnx"
    assert class_name("text-model.v2") == "TextModelV2"
    assert class_name("3d_unet") == "Model3dUnet"
    assert argument_name("class", set()) == "class_"
    assert argument_name("input:0", set()) == "input_0"
    assert argument_name("0", set()) == "_0"
    assert argument_name("timeout_s", set()) == "timeout_s_"
    assert argument_name("priority", set()) == "priority_"
    assert argument_name("self", set()) == "self_"
    assert argument_name("a.b", {"a_b"}) == "a_b_"


def test_rendered_module(stubs: str) -> None:
    assert stubs.startswith("# Generated by tritonize from model_repository/. Do not edit")
    for name in ("DigitsOnnx", "DigitsOnnxOutputs", "AsyncDigitsOnnx", "SequenceTorchscript", "TextPython",
                 "AsyncTextPython"):
        assert f'    "{name}",\n' in stubs  # __all__
    assert "class DigitsOnnxOutputs(TypedDict):" in stubs
    assert "    logits: NDArray[np.float32]\n" in stubs
    assert 'MODEL_NAME: str = "digits_onnx"' in stubs
    assert 'MODEL_NAME: str = "sequence_torchscript"' in stubs  # from the directory
    assert "def __init__(self, client: TritonClient, version: str = \"\") -> None:" in stubs
    assert "self.model: ModelClient = client.model(self.MODEL_NAME, version)" in stubs
    assert ("    def infer(\n        self,\n        *,\n        image: NDArray[np.float32],\n"
            "        timeout_s: float | None = None,\n        priority: int = 0,\n    ) -> DigitsOnnxOutputs:") in stubs
    assert "        ids: NDArray[np.int64],\n        mask: NDArray[np.int64],\n" in stubs
    # the docstring: name, backend, max_batch_size, tensors with the batch dimension, labels, batching, instances
    assert 'Model "digits_onnx": backend onnxruntime, max_batch_size 64.' in stubs
    assert "        image: TYPE_FP32 [-1, 1, 8, 8]\n" in stubs
    assert "        logits: TYPE_FP32 [-1, 10], labels in labels.txt\n" in stubs
    assert "    Dynamic batching: on\n    Instance groups: 2 x KIND_GPU on GPUs 0, 1; 1 x KIND_CPU\n" in stubs
    assert 'Model "sequence_torchscript": backend pytorch, max_batch_size 16.' in stubs
    assert "        ids: TYPE_INT64 [-1, -1]\n" in stubs
    assert "    Dynamic batching: off\n    Instance groups: not set (Triton's default)\n" in stubs
    # async: a factory, coroutines
    assert ("    @classmethod\n    async def create(cls, client: AsyncTritonClient, version: str = \"\") "
            "-> AsyncDigitsOnnx:\n        return cls(await client.model(cls.MODEL_NAME, version))") in stubs
    assert "    async def infer_sample(\n" in stubs
    assert "await self.model.infer_batch(" in stubs


def test_unbatched_model_strings_keywords_and_odd_names(stubs: str) -> None:
    text = stubs[stubs.index("class TextPython:"):stubs.index("class AsyncTextPython:")]
    assert "def infer_sample" not in text and "def infer(" in text and "def infer_batch(" in text
    assert "max_batch_size 0." in text
    assert "        text: TYPE_STRING [1]\n        bias: TYPE_FP16 [3], optional\n" in text
    assert '        "class" (argument class_): TYPE_INT32 [1]\n' in text
    assert '        "input:0" (argument input_0): TYPE_BOOL [2, 2]\n' in text
    assert "        text: NDArray[np.object_] | NDArray[np.bytes_] | NDArray[np.str_],\n" in text
    assert "        bias: NDArray[np.float16] | None = None,\n" in text
    assert "        class_: NDArray[np.int32],\n        input_0: NDArray[np.bool_],\n" in text
    assert '_present({"text": text, "bias": bias, "class": class_, "input:0": input_0})' in text
    assert ('TextPythonOutputs = TypedDict("TextPythonOutputs", {"out:0": NDArray[np.object_], '
            '"ok": NDArray[np.bool_]})') in stubs
    assert "AsyncTextPython" in stubs and "def infer_sample" not in stubs[stubs.index("class AsyncTextPython:"):]


def test_output_is_deterministic_and_the_module_imports(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    first = render_stubs(model_infos_from_repository(repo), "r")
    again = render_stubs(list(reversed(model_infos_from_repository(repo))), "r")
    assert first == again
    out = tmp_path / "deep" / "pkg" / "models.py"
    write_stubs(model_infos_from_repository(repo), out, "r")
    assert out.read_text() == first
    assert [p.name for p in out.parent.iterdir()] == ["models.py"]  # no temporary file left
    namespace: dict[str, object] = {}
    exec(compile(first, str(out), "exec"), namespace)  # runs without a server
    assert namespace["DigitsOnnx"].MODEL_NAME == "digits_onnx"  # type: ignore[attr-defined]


def test_same_class_name_twice(tmp_path: Path) -> None:
    one = 'name: "{}" max_batch_size: 0 input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }} ] ' \
          'output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }} ]'
    repo = _repo(tmp_path / "repo", {"a_b": one.format("a_b"), "a-b": one.format("a-b"),
                                     "triton_client": one.format("triton_client")})
    stubs = render_stubs(model_infos_from_repository(repo), "r")
    assert "class AB:" in stubs and "class AB2:" in stubs and "class TritonClient2:" in stubs
    compile(stubs, "stubs.py", "exec")


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"ok": CONFIGS["digits_onnx"], "broken": 'name: "broken"\nmax_batch_size: "x"\n'})
    with pytest.raises(UsageError, match=r"broken/config\.pbtxt"):
        model_infos_from_repository(repo)
    with pytest.raises(UsageError, match="not a directory"):
        model_infos_from_repository(tmp_path / "missing")


def test_mypy_strict_accepts_right_use_and_rejects_wrong_use(tmp_path: Path) -> None:
    site = tmp_path / "site" / "tritonize"  # tritonize.client without the editable-install import hook
    site.mkdir(parents=True)
    (site / "client").symlink_to(CLIENT.resolve(), target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    write_stubs(model_infos_from_repository(_repo(tmp_path / "repo")), work / "models.py", "model_repository/")
    (work / "good.py").write_text(GOOD_USAGE)
    (work / "bad.py").write_text(BAD_USAGE)
    # --follow-imports=silent: strict on these files, not on the client's own modules
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
               "--python-executable", sys.executable, "--cache-dir", str(tmp_path / "cache"), "--no-color-output",
               "--no-error-summary", "models.py", "good.py", "bad.py"]
    env = {**os.environ, "MYPYPATH": str(tmp_path / "site")}
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert all(line.startswith("bad.py:") for line in errors), result.stdout  # stubs and right use: clean
    lines = {int(line.split(":")[1]) for line in errors}
    assert lines == {13, 15, 16, 18, 19}, result.stdout
    assert 'Argument "image" to "infer" of "DigitsOnnx" has incompatible type' in result.stdout
    assert "floating[_32Bit]" in result.stdout


def test_cli_writes_stubs(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    out = tmp_path / "out" / "models.py"
    result = CliRunner().invoke(main, ["client-stubs", str(repo), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "3 model(s)" in result.stderr
    assert out.read_text() == render_stubs(model_infos_from_repository(repo), repo.as_posix())


@pytest.mark.parametrize("args", [[], ["REPO", "--url", "localhost:1"], ["REPO", "--protocol", "http"]])
def test_cli_needs_exactly_one_source(tmp_path: Path, args: list[str]) -> None:
    repo = _repo(tmp_path / "repo")
    args = [str(repo) if a == "REPO" else a for a in args]
    result = CliRunner().invoke(main, ["client-stubs", *args, "-o", str(tmp_path / "m.py")])
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "m.py").exists()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"broken": "max_batch_size: [\n"})
    result = CliRunner().invoke(main, ["client-stubs", str(repo), "-o", str(tmp_path / "m.py")])
    assert result.exit_code == 2 and "broken/config.pbtxt" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["client-stubs", str(empty), "-o", str(tmp_path / "m.py")])
    assert result.exit_code == 2 and "no <model>/config.pbtxt" in result.stderr
    assert not (tmp_path / "m.py").exists()


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["client-stubs", "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout and "tritonize client-stubs" in result.stdout
