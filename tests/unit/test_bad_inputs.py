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
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from tritonize.cli import main
from tritonize.client import ModelInfo, TritonClient, UsageError

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

    def npy(self, name: str) -> str:
        path = self.tmp / name
        np.save(path, np.zeros((1, 4), np.float32))
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


# Shorthands for the matrix below: a spec body for [models.m] after a working source; a whole spec file; export
# of the toy MLP with flags; bench, bench at concurrency 1, infer and serve with arguments.


def S(body: str) -> Callable[[Env], list[str]]:
    return lambda e: ["build", e.spec(f'source = "{TOY}:mlp"\n' + body)]


def SPEC_ONLY(text: str) -> Callable[[Env], list[str]]:
    return lambda e: ["build", e.file("tritonize.toml", text)]


def EX(*a: str) -> Callable[[Env], list[str]]:
    return lambda e: export(e, f"{TOY}:mlp", *a)


def B(*a: str) -> Callable[[Env], list[str]]:
    return lambda e: ["bench", "m", *a, *DEAD]


def BC(*a: str) -> Callable[[Env], list[str]]:
    return lambda e: ["bench", "m", "--concurrency", "1", *a, *DEAD]


def I(*a: str) -> Callable[[Env], list[str]]:  # noqa: E743
    return lambda e: ["infer", "m", *a, *DEAD]


def SV(*a: str) -> Callable[[Env], list[str]]:
    return lambda e: ["serve", str(e.repo), *a]


CASES += [
    # spec file
    Case("spec file missing", lambda e: ["build", str(e.tmp / "nope.toml")], 2, ("nope.toml",)),
    Case("spec not TOML", SPEC_ONLY("models = [\n"), 2, ("tritonize.toml", "TOML")),
    Case("spec unknown top key", SPEC_ONLY('repo = "x"\n'), 2, ("repo", "repository")),
    Case("spec models not a table", SPEC_ONLY('models = 3\n'), 2, ("models", "3", "table")),
    Case("spec no models", SPEC_ONLY('repository = "r"\n'), 2, ("models",)),
    Case("spec model not a table", SPEC_ONLY('[models]\nm = 3\n'), 2, ("models.m", "3")),
    Case("spec repository int", SPEC_ONLY('repository = 3\n[models.m]\nsource = "x:y"\n'), 2, ("repository", "3")),
    Case("spec unknown model key", S("max_batch = 4"), 2, ("models.m.max_batch", "max_batch_size")),
    Case("spec source missing", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models.m]\nmax_batch_size = 4\n')], 2, ("models.m.source",)),
    Case("spec source int", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models.m]\nsource = 3\n')], 2, ("models.m.source", "3", "string")),
    Case("spec formats unknown", S('formats = ["tensorrt"]'), 2, ("formats", "tensorrt", "onnx")),
    Case("spec formats empty", S('formats = []'), 2, ("formats",)),
    Case("spec formats string", S('formats = "onnx"'), 2, ("formats", "onnx", "list")),
    Case("spec formats duplicate", S('formats = ["onnx", "onnx"]'), 2, ("formats", "onnx", "each format once")),
    Case("spec max_batch_size negative", S('max_batch_size = -1'), 2, ("max_batch_size", "-1", ">= 0")),
    Case("spec max_batch_size string", S('max_batch_size = "8"'), 2, ("max_batch_size", "8", "integer")),
    Case("spec max_batch_size bool", S('max_batch_size = true'), 2, ("max_batch_size", "True", "integer")),
    Case("spec max_batch_size float", S('max_batch_size = 4.5'), 2, ("max_batch_size", "4.5", "integer")),
    Case("spec version 0", S('version = 0'), 2, ("version", "0")),
    Case("spec version negative", S('version = -3'), 2, ("version", "-3")),
    Case("spec version string", S('version = "2"'), 2, ("version", "2", "integer")),
    Case("spec name with slash", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models."a/b"]\nsource = "{TOY}:mlp"\n')], 2, ("a/b",)),
    Case("spec name with space", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models."a b"]\nsource = "{TOY}:mlp"\n')], 2, ("a b",)),
    Case("spec name trailing newline", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models."m\\n"]\nsource = "{TOY}:mlp"\n')], 2, ("models.m\\n.name", "m\\n")),
    Case("spec name embedded newline", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\n[models."a\\nb"]\nsource = "{TOY}:mlp"\n')], 2, ("name",)),
    Case("spec default_model_filename newline", S('default_model_filename = "model.onnx\\n"'), 2, ("default_model_filename",)),
    Case("spec default_model_filename slash", S('default_model_filename = "../model.onnx"'), 2, ("default_model_filename", "../model.onnx")),
    Case("spec outputs newline", S('outputs = ["y\\n"]'), 2, ("outputs",)),
    Case("spec outputs duplicate", S('outputs = ["y", "y"]'), 2, ("outputs", "y")),
    Case("spec outputs empty name", S('outputs = [""]'), 2, ("outputs",)),
    Case("spec outputs not list", S('outputs = "y"'), 2, ("outputs", "y", "list")),
    Case("spec inputs bad dtype", S('inputs = { features = { dtype = "float33" } }'), 2, ("inputs.features.dtype", "float33")),
    Case("spec inputs dim 0", S('inputs = { features = { dims = [0] } }'), 2, ("inputs.features", "0")),
    Case("spec inputs dim -2", S('inputs = { features = { dims = [-2] } }'), 2, ("inputs.features", "-2")),
    Case("spec inputs unknown key", S('inputs = { features = { shape = [4] } }'), 2, ("inputs.features.shape", "dims")),
    Case("spec inputs not a table", S('inputs = ["features"]'), 2, ("inputs", "table")),
    Case("spec inputs bad name", S('inputs = { "a b" = { dims = [4] } }'), 2, ("inputs", "a b")),
    Case("spec inputs range reversed", S('inputs = { features = { range = [5, 1] } }'), 2, ("range",)),
    Case("spec instance kind", S('instance_group = [{ kind = "tpu" }]'), 2, ("instance_group[0].kind", "KIND_TPU", "KIND_CPU")),
    Case("spec instance count 0", S('instance_group = [{ kind = "cpu", count = 0 }]'), 2, ("instance_group[0].count", "0", ">= 1")),
    Case("spec instance count -1", S('instance_group = [{ kind = "cpu", count = -1 }]'), 2, ("instance_group[0].count", "-1", ">= 1")),
    Case("spec instance gpus on cpu", S('instance_group = [{ kind = "cpu", gpus = [0] }]'), 2, ("gpus",)),
    Case("spec instance unknown key", S('instance_group = [{ kind = "cpu", counts = 2 }]'), 2, ("counts", "count")),
    Case("spec instance not list", S('instance_group = { kind = "cpu" }'), 2, ("instance_group", "list")),
    Case("spec dynbatch preferred > max", S('max_batch_size = 4\ndynamic_batching = { preferred_batch_size = [8] }'), 2, ("preferred_batch_size", "8", "4")),
    Case("spec dynbatch preferred 0", S('dynamic_batching = { preferred_batch_size = [0] }'), 2, ("preferred_batch_size", "0")),
    Case("spec dynbatch delay negative", S('dynamic_batching = { max_queue_delay_microseconds = -5 }'), 2, ("max_queue_delay_microseconds", "-5")),
    Case("spec dynbatch unknown key", S('dynamic_batching = { max_delay = 5 }'), 2, ("dynamic_batching.max_delay", "max_queue_delay_microseconds")),
    Case("spec dynbatch string", S('dynamic_batching = "yes"'), 2, ("dynamic_batching", "yes")),
    Case("spec dynbatch unbatched", S('max_batch_size = 0\ndynamic_batching = true'), 2, ("dynamic_batching", "max_batch_size")),
    Case("spec dynbatch priority default > levels", S('dynamic_batching = { priority_levels = 2, default_priority_level = 3 }'), 2, ("default_priority_level", "3")),
    Case("spec version_policy unknown", S('version_policy = { newest = 2 }'), 2, ("version_policy.newest", "latest")),
    Case("spec version_policy latest 0", S('version_policy = { latest = 0 }'), 2, ("num_versions", "0")),
    Case("spec version_policy specific empty", S('version_policy = { specific = [] }'), 2, ("version_policy.specific.versions",)),
    Case("spec warmup batch > max", S('max_batch_size = 4\nwarmup_batch_sizes = [8]'), 2, ("warmup_batch_sizes", "8")),
    Case("spec warmup batch 0", S('warmup_batch_sizes = [0]'), 2, ("warmup_batch_sizes", "0")),
    Case("spec response_cache string", S('response_cache = "yes"'), 2, ("response_cache", "yes", "true or false")),
    Case("spec script string", S('script = "yes"'), 2, ("script", "yes", "true or false")),
    Case("spec labels missing", S('labels = "nolabels.txt"'), 2, ("labels", "nolabels.txt")),
    Case("spec kwargs not a table", S('kwargs = 3'), 2, ("kwargs", "3", "table")),
    Case("spec prune 1.5", S('prune = 1.5'), 2, ("prune", "1.5")),
    Case("spec prune negative", S('prune = -0.1'), 2, ("prune", "-0.1")),
    Case("spec prune 0", S('prune = 0'), 2, ("prune", "0")),
    Case("spec onnx opset 3", S('[models.m.onnx]\nopset = 3'), 2, ("onnx.opset", "3")),
    Case("spec onnx opset string", S('[models.m.onnx]\nopset = "17"'), 2, ("opset", "17", "integer")),
    Case("spec onnx unknown key", S('[models.m.onnx]\nopsets = 17'), 2, ("onnx.opsets", "opset")),
    Case("spec tolerance negative", S('[models.m.onnx]\ntolerance = { atol = -1, rtol = 0, min_cosine = 0.99, min_argmax_agreement = 0.99 }'), 2, ("tolerance.atol", "-1")),
    Case("spec tolerance cosine > 1", S('[models.m.onnx]\ntolerance = { atol = 0, rtol = 0, min_cosine = 1.5, min_argmax_agreement = 0.99 }'), 2, ("min_cosine", "1.5")),
    Case("spec tolerance unknown key", S('[models.m.onnx]\ntolerance = { atols = 1 }'), 2, ("tolerance", "atols")),
    Case("spec accuracy_budget 150", S('formats = ["onnx-int8"]\n[models.m.onnx-int8]\naccuracy_budget = 150'), 2, ("accuracy_budget", "150")),
    Case("spec quantization method", S('formats = ["onnx-int8"]\n[models.m.onnx-int8]\nquantization = { method = "magic" }'), 2, ("quantization.method", "magic", "dynamic or static")),
    Case("spec quantization calibration", S('formats = ["onnx-int8"]\n[models.m.onnx-int8]\nquantization = { method = "static", calibration = "guess" }'), 2, ("quantization.calibration", "guess")),
    Case("spec quantization on fp32 format", S('formats = ["onnx"]\n[models.m.onnx]\nquantization = { method = "static" }'), 2, ("quantization",)),
    Case("spec quantization samples 0", S('formats = ["onnx-int8"]\n[models.m.onnx-int8]\nquantization = { method = "static", calibration_samples = 0 }'), 2, ("calibration_samples", "0")),
    Case("spec calibration_data missing", S('formats = ["onnx-int8"]\n[models.m.onnx-int8]\nquantization = { method = "static", calibration_data = "nocal.npz" }'), 2, ("calibration_data", "nocal.npz")),
    Case("spec parameters unknown", S('[models.m.onnx]\nparameters = { bogus_param = "1" }'), 2, ("bogus_param",)),
    Case("spec format options for unbuilt format", S('formats = ["onnx"]\n[models.m.torchscript]\nopset = 17'), 2, ("torchscript",)),
    Case("spec evaluation missing", S('formats = ["onnx-int8"]\nevaluation = "noeval.npz"'), 2, ("evaluation", "noeval.npz")),
    Case("spec sequence_batching with dynamic", S('dynamic_batching = true\nsequence_batching = {}'), 2, ("sequence_batching",)),
    Case("spec template_dir missing", lambda e: ["build", e.file("tritonize.toml", f'repository = "{e.repo}"\ntemplate_dir = "notemplates"\n[models.m]\nsource = "{TOY}:mlp"\n')], 2, ("template_dir", "notemplates")),
    # build options
    Case("build --model not in spec", lambda e: ["build", e.spec(f'source = "{TOY}:mlp"'), "--model", "nosuch"], 2, ("--model", "nosuch", "m")),
    Case("build --from-manifest missing", lambda e: ["build", "--from-manifest", str(e.tmp / "none.json")], 2, ("--from-manifest", "none.json")),
    Case("build --from-manifest not JSON", lambda e: ["build", "--from-manifest", e.file("tritonize-manifest.json", "{")], 2, ("tritonize-manifest.json",)),
    Case("build spec and --from-manifest", lambda e: ["build", e.spec(f'source = "{TOY}:mlp"'), "--from-manifest", str(e.repo)], 2, ("--from-manifest",)),
    Case("build no spec here", lambda e: ["build"], 2, ("SPEC/--from-manifest", "neither")),
    # export flags
    Case("export --format bogus", EX("--format", "bogus"), 2, ("--format", "bogus", "onnx")),
    Case("export --max-batch-size abc", EX("--max-batch-size", "abc"), 2, ("--max-batch-size", "abc", "integer")),
    Case("export --max-batch-size -1", EX("--max-batch-size", "-1"), 2, ("max_batch_size", "-1")),
    Case("export --input no name", EX("--input", ":float32:4"), 2, ("--input", ":float32:4")),
    Case("export --input bad dtype", EX("--input", "features:float33:4"), 2, ("float33",)),
    Case("export --input bad dims", EX("--input", "features:float32:a"), 2, ("--input", "a")),
    Case("export --output-name newline", EX("--output-name", "y\n"), 2, ("outputs",)),
    Case("export --kwarg without =", EX("--kwarg", "seed"), 2, ("--kwarg", "seed", "=")),
    Case("export --name empty", lambda e: ["export", f"{TOY}:mlp", "--name", "", "--repo", str(e.repo)], 2, ("name",)),
    Case("export --name with space", lambda e: ["export", f"{TOY}:mlp", "--name", "a b", "--repo", str(e.repo)], 2, ("name", "a b")),
    Case("export --version 0", EX("--version", "0"), 2, ("version", "0")),
    Case("export --kind bogus", EX("--kind", "bogus"), 2, ("--kind", "bogus")),
    Case("export --instances 0", EX("--instances", "0"), 2, ("count", "0")),
    Case("export --preferred-batch-size 0", EX("--dynamic-batching", "--preferred-batch-size", "0"), 2, ("preferred_batch_size", "0")),
    Case("export --max-queue-delay-us -1", EX("--dynamic-batching", "--max-queue-delay-us", "-1"), 2, ("max_queue_delay_microseconds", "-1")),
    Case("export --opset 99", EX("--opset", "99"), 2, ("opset", "99")),
    Case("export --atol -1", EX("--atol", "-1"), 2, ("atol", "-1")),
    Case("export --onnx-param no =", EX("--onnx-param", "intra_op_thread_count"), 2, ("--onnx-param", "intra_op_thread_count")),
    Case("export --warmup-batch-size 0", EX("--warmup-batch-size", "0"), 2, ("warmup_batch_sizes", "0")),
    Case("export --labels missing", EX("--labels", "nolabels.txt"), 2, ("labels", "nolabels.txt")),
    Case("export --template-dir missing", EX("--template-dir", "notemplates"), 2, ("template", "notemplates")),
    Case("export --prune 2", EX("--prune", "2"), 2, ("prune", "2")),
    Case("export --quantization bogus", EX("--format", "onnx-int8", "--quantization", "bogus"), 2, ("bogus",)),
    Case("export --accuracy-budget -1", EX("--format", "onnx-int8", "--accuracy-budget", "-1"), 2, ("accuracy_budget", "-1")),
    Case("export --gpus on cpu", EX("--kind", "cpu", "--gpus", "0"), 2, ("gpus",)),
    Case("export unknown option", EX("--bogus"), 2, ("--bogus",)),
    Case("export missing source", lambda e: ["export"], 2, ("SOURCE",)),
    Case("export .pt without example inputs", lambda e: export(e, str(e.pt)), 2, ("inputs.features", "--example-inputs")),
    Case("export source file not python", lambda e: export(e, e.file("notes.txt", "hello") + ":build"), 2, ("source", "notes.txt")),
    Case("export source with syntax error", lambda e: export(e, e.file("broken.py", "def build(:\n") + ":build"), 1, ("source", "broken.py", "SyntaxError")),
    Case("export source raises", lambda e: export(e, e.file("raises.py", "def build():\n    raise ValueError('no weights')\n") + ":build"), 1, ("raises.py:build", "no weights")),
    # infer
    Case("infer --input without =", I("--input", "x"), 2, ("--input", "x", "NAME=FILE")),
    Case("infer --input file missing", lambda e: ["infer", "m", "--input", f"x={e.tmp / 'nox.npy'}", *DEAD], 2, ("--input x", "nox.npy")),
    Case("infer --input not npy", lambda e: ["infer", "m", "--input", f"x={e.file('x.txt', 'hello')}", *DEAD], 2, ("--input x", "x.txt")),
    Case("infer --url [::1", lambda e: ["infer", "m", "--input", f"x={e.npy('a.npy')}", "--url", "http://[::1"], 2, ("url", "http://[::1")),
    Case("infer --url ftp", lambda e: ["infer", "m", "--input", f"x={e.npy('a.npy')}", "--url", "ftp://host:1"], 2, ("url", "ftp://host:1")),
    Case("infer --url port 99999", lambda e: ["infer", "m", "--input", f"x={e.npy('a.npy')}", "--url", "host:99999"], 2, ("url", "host:99999")),
    Case("infer --protocol bogus", I("--input", "x=a.npy", "--protocol", "bogus"), 2, ("--protocol", "bogus")),
    Case("infer --timeout abc", I("--input", "x=a.npy", "--timeout", "abc"), 2, ("--timeout", "abc")),
    Case("infer --timeout 0", lambda e: ["infer", "m", "--input", f"x={e.npy('a.npy')}", "--timeout", "0", *DEAD], 2, ("--timeout", "0")),
    Case("infer missing --input", lambda e: ["infer", "m", *DEAD], 2, ("--input",)),
    Case("infer --input twice", lambda e: ["infer", "m", "--input", f"x={e.npy('a.npy')}", "--input", f"x={e.npy('b.npy')}", *DEAD], 2, ("--input", "x", "twice")),
    # bench
    Case("bench --concurrency 0", B("--concurrency", "0"), 2, ("--concurrency", "0", "whole numbers >= 1")),
    Case("bench --concurrency -4", B("--concurrency", "-4"), 2, ("--concurrency", "-4")),
    Case("bench --concurrency 1.5", B("--concurrency", "1.5"), 2, ("--concurrency", "1.5")),
    Case("bench --concurrency abc", B("--concurrency", "abc"), 2, ("--concurrency", "abc")),
    Case("bench --concurrency empty item", B("--concurrency", "1,,4"), 2, ("--concurrency", "1,,4")),
    Case("bench both modes", B("--concurrency", "1", "--request-rate", "10"), 2, ("--concurrency/--request-rate", "both")),
    Case("bench neither mode", B(), 2, ("--concurrency/--request-rate", "neither")),
    Case("bench --request-rate 0", B("--request-rate", "0"), 2, ("--request-rate", "0")),
    Case("bench --stability 0", BC("--stability", "0"), 2, ("stability", "0")),
    Case("bench --stability 150", BC("--stability", "150"), 2, ("stability", "1.5")),
    Case("bench --max-trials 2", BC("--max-trials", "2"), 2, ("max_trials", "2", ">= 3")),
    Case("bench --percentile 0", BC("--percentile", "0"), 2, ("percentile", "0")),
    Case("bench --percentile 100", BC("--percentile", "100"), 2, ("percentile", "100")),
    Case("bench --measurement-interval-ms 0", BC("--measurement-interval-ms", "0"), 2, ("interval", "0")),
    Case("bench --warmup-s -1", BC("--warmup-s", "-1"), 2, ("warm-up", "-1")),
    Case("bench --workers 0", BC("--workers", "0"), 2, ("workers", "0")),
    Case("bench --sla bad syntax", BC("--sla", "p99<<20ms"), 2, ("--sla", "p99<<20ms")),
    Case("bench --sla unknown metric", BC("--sla", "p101<=20ms"), 2, ("--sla", "p101<=20ms")),
    Case("bench --sla bad number", BC("--sla", "throughput>=abc/s"), 2, ("--sla", "throughput>=abc/s")),
    Case("bench --sla bad unit", BC("--sla", "p99<=20parsecs"), 2, ("--sla", "p99<=20parsecs")),
    Case("bench --sla level not measured", BC("--sla", "p99<=20ms@16"), 2, ("--sla", "16")),
    Case("bench --shape bad dims", BC("--shape", "x:a,b"), 2, ("--shape", "x:a,b")),
    Case("bench --shape no colon", BC("--shape", "x"), 2, ("--shape", "x")),
    Case("bench --shared-memory with builtin", BC("--engine", "builtin", "--shared-memory", "system"), 2, ("--shared-memory",)),
    Case("bench --ready-timeout 0", BC("--ready-timeout", "0"), 2, ("--ready-timeout", "0")),
    Case("bench --report is a file", lambda e: ["bench", "m", "--concurrency", "1", "--report", e.file("report.txt", "x"), *DEAD], 2, ("--report", "report.txt")),
    Case("bench --input-data not npz", lambda e: ["bench", "m", "--concurrency", "1", "--engine", "builtin", "--input-data", e.file("data.txt", "x"), *DEAD], 2, ("--input-data", "data.txt")),
    Case("bench --distribution bogus", BC("--distribution", "bogus"), 2, ("--distribution", "bogus")),
    Case("bench --url port text", lambda e: ["bench", "m", "--concurrency", "1", "--url", "host:port"], 2, ("url", "host:port")),
    # serve
    Case("serve --http-port 70000", SV("--http-port", "70000"), 2, ("http_port", "70000")),
    Case("serve --http-port -1", SV("--http-port", "-1"), 2, ("http_port", "-1")),
    Case("serve repo missing", lambda e: ["serve", str(e.tmp / "norepo")], 2, ("norepo",)),
    Case("serve repo is a file", lambda e: ["serve", e.file("repo.txt", "x")], 2, ("repo.txt",)),
    Case("serve --model-control-mode bogus", SV("--model-control-mode", "bogus"), 2, ("--model-control-mode", "bogus")),
    Case("serve --load-model without explicit", SV("--load-model", "m"), 2, ("--load-model", "explicit")),
    Case("serve --timeout 0", SV("--timeout", "0"), 2, ("--timeout", "0")),
    Case("serve --native without a build", lambda e: ["serve", str(e.repo), "--native", str(e.tmp / "nonative")], 2, ("native", "nonative", "build.sh")),
    # client-stubs
    Case("client-stubs repo missing", lambda e: ["client-stubs", str(e.tmp / "norepo"), "-o", str(e.tmp / "s.py")], 2, ("norepo",)),
    Case("client-stubs --url bad", lambda e: ["client-stubs", "--url", "http://[::1", "-o", str(e.tmp / "s.py")], 2, ("url", "http://[::1")),
    Case("client-stubs repo and --url", lambda e: ["client-stubs", str(e.repo), "--url", "127.0.0.1:1", "-o", str(e.tmp / "s.py")], 2, ("--url",)),
    # check
    Case("check --output bogus", lambda e: ["check", str(e.repo), "--output", "bogus"], 2, ("--output", "bogus")),
    Case("unknown command", lambda e: ["expor"], 2, ("expor", "export")),
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


TWO = {"name": "two", "max_batch_size": 4,
       "input": [{"name": "a", "data_type": "TYPE_FP32", "dims": [2]}, {"name": "ids", "data_type": "TYPE_INT64", "dims": [-1]}],
       "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [1]}]}
FLAT = {**CONFIG, "name": "flat", "max_batch_size": 0}
TEXT = {"name": "s", "max_batch_size": 4, "input": [{"name": "text", "data_type": "TYPE_STRING", "dims": [1]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [1]}]}


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


@dataclass
class Call:
    id: str
    call: Callable[[Callable[[dict[str, object]], Any]], object]  # given a factory: model config -> model client
    words: tuple[str, ...]


def _bench(**kwargs: Any) -> object:
    from tritonize.client.bench.harness import BenchRequest

    return BenchRequest("m", **kwargs)


def _settings(**kwargs: Any) -> object:
    from tritonize.client.bench.measure import Settings

    return Settings(**kwargs)


def _gate(text: str) -> object:
    from tritonize.client.bench.sla import Gate

    return Gate.parse(text)


CALLS = [
    Call("url [::1", lambda m: TritonClient("http://[::1"), ("url", "http://[::1", "host:port")),
    Call("url ftp", lambda m: TritonClient("ftp://host:1"), ("url", "ftp://host:1", "host:port")),
    Call("url port out of range", lambda m: TritonClient("host:99999"), ("url", "host:99999", "0-65535")),
    Call("url protocol mismatch", lambda m: TritonClient("http://h:1", protocol="grpc"), ("url", "http://h:1", "grpc")),
    Call("timeout 0", lambda m: TritonClient("h:1", timeout_s=0), ("timeout_s", "0", "> 0")),
    Call("max_concurrency 0", lambda m: TritonClient("h:1", max_concurrency=0), ("max_concurrency", "0", ">= 1")),
    Call("missing input", lambda m: m(TWO).infer(a=f32(1, 2)), ("'ids'", "missing", "int64")),
    Call("unknown input", lambda m: m(CONFIG).infer(x=f32(1, 3), z=f32(1, 3)), ("'z'", "not an input", "x: float32")),
    Call("wrong dtype", lambda m: m(CONFIG).infer(x=np.zeros((1, 3), np.int32)), ("'x'", "int32", "float32")),
    Call("float64 without cast", lambda m: m(CONFIG).infer(x=np.zeros((1, 3))), ("'x'", "float64", "cast=True")),
    Call("list input", lambda m: m(CONFIG).infer(x=[[1.0, 2.0, 3.0]]), ("'x'", "float64", "float32")),
    Call("wrong rank", lambda m: m(CONFIG).infer(x=f32(1, 3, 1)), ("'x'", "[1, 3, 1]", "[-1, 3]")),
    Call("wrong dim", lambda m: m(CONFIG).infer(x=f32(1, 4)), ("'x'", "[1, 4]", "[-1, 3]")),
    Call("batch too big", lambda m: m(CONFIG).infer(x=f32(5, 3)), ("'x'", "5", "max_batch_size 4")),
    Call("batch disagreement", lambda m: m(TWO).infer(a=f32(2, 2), ids=np.zeros((3, 5), np.int64)),
         ("'ids'", "3", "like input 'a'")),
    Call("empty batch", lambda m: m(CONFIG).infer(x=f32(0, 3)), ("'x'", "0 samples", "at least 1")),
    Call("empty batch infer_batch", lambda m: m(CONFIG).infer_batch(x=f32(0, 3)), ("'x'", "0 samples")),
    Call("array instead of a dict", lambda m: m(CONFIG).infer(f32(1, 3)), ("inputs", "ndarray", "a dict")),
    Call("array instead of a dict infer_batch", lambda m: m(CONFIG).infer_batch(f32(1, 3)), ("ndarray", "a dict")),
    Call("given twice", lambda m: m(CONFIG).infer({"x": f32(1, 3)}, x=f32(1, 3)), ("'x'", "given twice")),
    Call("infer_sample unbatched", lambda m: m(FLAT).infer_sample(x=f32(3)), ("'flat'", "max_batch_size 0")),
    Call("unbatched given a batch", lambda m: m(FLAT).infer(x=f32(1, 3)), ("'x'", "[1, 3]", "[3]")),
    Call("sample of wrong dims", lambda m: m(CONFIG).infer_sample(x=f32(4)), ("'x'", "[1, 4]", "[-1, 3]")),
    Call("unknown output", lambda m: m(CONFIG).infer(x=f32(1, 3), outputs=["nosuch"]), ("'nosuch'", "one of y")),
    Call("cast bogus", lambda m: m(CONFIG).infer(x=f32(1, 3), cast="bogus"), ("cast", "bogus", "same_kind")),
    Call("strings to an FP32 input", lambda m: m(CONFIG).infer(x=np.array([["a", "b", "c"]], dtype=object)),
         ("'x'", "object", "float32")),
    Call("floats to a string input", lambda m: m(TEXT).infer(text=f32(1, 1)), ("'text'", "float32", "bytes or str")),
    Call("infer_batch max_concurrency 0", lambda m: m(CONFIG).infer_batch(x=f32(2, 3), max_concurrency=0),
         ("max_concurrency", "0")),
    Call("infer_batch timeout 0", lambda m: m(CONFIG).infer_batch(x=f32(2, 3), timeout_s=0), ("timeout_s", "0")),
    Call("bench settings batch 0", lambda m: _settings(batch_size=0), ("batch_size", "0", ">= 1")),
    Call("bench settings stability 2", lambda m: _settings(stability=2), ("stability", "2", "(0, 1)")),
    Call("bench no levels", lambda m: _bench(levels=()), ("levels", "[]", "positive")),
    Call("bench mode", lambda m: _bench(mode="closed"), ("mode", "closed", "concurrency or request_rate")),
    Call("bench ready timeout", lambda m: _bench(ready_timeout_s=0), ("--ready-timeout", "0")),
    Call("sla gate", lambda m: _gate("p99<<3"), ("--sla", "p99<<3", "p99<=20ms")),
]


@pytest.mark.parametrize("case", CALLS, ids=[c.id for c in CALLS])
def test_client_bad_call_is_one_line(case: Call) -> None:
    """A usage error (exit code 2 in the CLI) naming the tensor or argument, raised before anything is sent
    (nothing listens at the address)."""
    from tritonize.client.client import ModelClient

    with TritonClient("127.0.0.1:1", timeout_s=1, retry=None) as triton, pytest.raises(UsageError) as caught:
        case.call(lambda config: ModelClient(triton, ModelInfo.from_config(config)))
    text = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in text, text
    for word in case.words:
        assert word in text, f"{word!r} not in {text!r}"


ASYNC_CALLS = [
    Call("missing input", lambda m: m(TWO).infer(a=f32(1, 2)), ("'ids'", "missing")),
    Call("array instead of a dict", lambda m: m(TWO).infer_batch(f32(1, 2)), ("ndarray", "a dict")),
    Call("wrong dtype", lambda m: m(TWO).infer(a=np.zeros((1, 2), np.int8), ids=np.zeros((1, 2), np.int64)),
         ("'a'", "int8", "float32")),
    Call("empty batch", lambda m: m(CONFIG).infer(x=f32(0, 3)), ("'x'", "0 samples")),
    Call("empty batch infer_batch", lambda m: m(CONFIG).infer_batch(x=f32(0, 3)), ("'x'", "0 samples")),
]


@pytest.mark.parametrize("case", ASYNC_CALLS, ids=[c.id for c in ASYNC_CALLS])
def test_async_client_bad_call_is_one_line(case: Call) -> None:
    from tritonize.client.aio import AsyncModelClient, AsyncTritonClient

    async def call() -> str:
        async with AsyncTritonClient("127.0.0.1:1", timeout_s=1, retry=None) as triton:
            with pytest.raises(UsageError) as caught:
                await case.call(lambda config: AsyncModelClient(triton, ModelInfo.from_config(config)))
            return str(caught.value)

    text = asyncio.run(call())
    assert "\n" not in text, text
    for word in case.words:
        assert word in text, f"{word!r} not in {text!r}"
