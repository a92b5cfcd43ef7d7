"""Issue 10: ``tritonize build`` killed with SIGKILL at each phase, with the repository's parent writable and not
(a mounted volume). Afterwards ``check`` is clean or names the damage, the repository serves, and the next build
repairs whatever the kill left.

The build runs as a separate process that SIGKILLs itself at the chosen point (a patched function), so the kill
lands exactly there. As root it runs as ``nobody`` (setpriv), for whom a root-owned parent is really read-only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tritonize.core.check import check_repository
from tritonize.core.manifest import MANIFEST
from tritonize.core.staging import PREFIX
from tritonize.deploy.local import LocalTriton
from tritonize.generator.build import build
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")
MODELS = ("a_onnx", "b_onnx")
ROOT = os.geteuid() == 0
NOBODY = 65534

# Kill this process at the n-th call of a function: (module, attribute, n, only when the first argument ends so).
DRIVER = r"""
import os, signal, sys
import tritonize.generator.build as build
import tritonize.generator.writer as writer
module, attr, nth, suffix, spec = sys.argv[1:6]
target = {"build": build, "writer": writer}[module]
real, calls = getattr(target, attr), []
def killing(*args, **kwargs):
    if not suffix or str(args[0]).endswith(suffix):
        calls.append(1)
        if len(calls) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(target, attr, killing)
from tritonize.cli import main
main(["build", spec, *sys.argv[6:]], prog_name="tritonize")
"""


@dataclass(frozen=True)
class Phase:
    id: str
    module: str
    attr: str
    nth: int = 1
    suffix: str = ""


PHASES = [
    Phase("importing", "build", "load_source"),  # the user's code is being imported
    Phase("exporting", "build", "export", 2),  # b's export, a staged
    Phase("verifying", "build", "verify"),
    Phase("staging", "build", "_check_staged"),  # everything staged, nothing committed
    Phase("between-rename-and-manifest", "writer", "_atomic_write", 1, f"a_onnx/{MANIFEST}"),
    Phase("between-models", "build", "commit", 2),  # a committed, b not
]


def _spec(work: Path, repo: Path, version: int) -> Path:
    models = "".join(f'[models.{m}]\nsource = "{TOY}:mlp"\nkwargs = {{ seed = {version} }}\nformats = ["onnx"]\n'
                     f"max_batch_size = 4\nversion = {version}\n" for m in ("a", "b"))
    path = work / "tritonize.toml"
    path.write_text(f'repository = "{repo}"\n{models}')
    return path


def _as_builder(cmd: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd] if ROOT else cmd


def _run(work: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(work / "home"), "TRITONIZE_DEBUG": ""}
    return subprocess.run(_as_builder([sys.executable, *args]), capture_output=True, text=True, env=env,
                          cwd=work, timeout=300)


def _chown(path: Path) -> None:
    if ROOT:
        for p in (path, *path.rglob("*")):
            os.chown(p, NOBODY, NOBODY)


@dataclass
class Setup:
    work: Path  # the repository's parent
    repo: Path
    spec: Path


@pytest.fixture(scope="module")
def version_1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("v1") / "repo"
    build([ModelRequest(m, f"{TOY}:mlp", kwargs={"seed": 1}, formats=("onnx",), max_batch_size=4, version=1)
           for m in ("a", "b")], repo)
    return repo


@contextmanager
def _setup(version_1: Path | None, parent_writable: bool) -> Iterator[Setup]:
    if shutil.which("setpriv") is None and ROOT:
        pytest.skip("needs setpriv (util-linux) to build as a user who cannot write the parent")
    work = Path(tempfile.mkdtemp(prefix="tritonize-kill-"))  # not under pytest's 0700 tmp: nobody must reach it
    try:
        work.chmod(0o755)
        (work / "home").mkdir()
        repo = work / "repo"
        if version_1 is not None:
            shutil.copytree(version_1, repo)
        else:
            repo.mkdir()
        spec = _spec(work, repo, 2)
        _chown(work / "home")
        _chown(repo)
        if parent_writable:
            _chown(work)
        elif not ROOT:
            work.chmod(0o555)
        yield Setup(work, repo, spec)
    finally:
        work.chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)


def _staging(setup: Setup) -> list[Path]:
    places = [setup.work, setup.repo, *(p for p in setup.repo.iterdir() if p.is_dir())]
    return [p for place in places for p in place.glob(PREFIX + "*")]


def _versions(repo: Path, model: str) -> tuple[list[str], list[str]]:
    on_disk = sorted(p.name for p in (repo / model).iterdir() if p.name.isdigit())
    recorded = sorted(json.loads((repo / model / MANIFEST).read_text())["versions"])
    return on_disk, recorded


def _serves(repo: Path) -> None:
    with LocalTriton(repo) as server:  # strict: every model must load
        assert {m.name for m in server.models() if m.state == "READY"} >= set(MODELS)


def _killed_build(setup: Setup, phase: Phase) -> None:
    killed = _run(setup.work, ["-c", DRIVER, phase.module, phase.attr, str(phase.nth), phase.suffix,
                               str(setup.spec)])
    assert killed.returncode == -9, f"not killed at {phase.id}: {killed.returncode} {killed.stderr[-2000:]}"


def _rebuild(setup: Setup) -> dict[str, str]:
    again = _run(setup.work, ["-c", "from tritonize.cli import main; main()", "build", str(setup.spec),
                              "--output", "json"])
    assert again.returncode == 0, again.stderr
    return {row["model"]: row["action"] for row in json.loads(again.stdout)["verification"]}


@pytest.mark.parametrize("parent_writable", [True, False], ids=["parent-writable", "parent-read-only"])
@pytest.mark.parametrize("phase", PHASES, ids=[p.id for p in PHASES])
def test_a_build_killed_at_each_phase_is_survived(version_1: Path, phase: Phase, parent_writable: bool) -> None:
    with _setup(version_1, parent_writable) as setup:
        _killed_build(setup, phase)
        left = _staging(setup)
        assert left, "a kill leaves its staging directory"
        # never at the repository's top level, where Triton would load it as a model
        assert all(p.parent != setup.repo for p in left), left
        assert all(p.parent == setup.work for p in left) == parent_writable, left

        findings = check_repository(setup.repo)
        assert [f for f in findings if f.severity == "error"] == [], findings
        gaps = [(f.model, f.code) for f in findings if f.code == "manifest-incomplete"]
        assert gaps == ([("a_onnx", "manifest-incomplete")] if phase.id == "between-rename-and-manifest" else [])
        _serves(setup.repo)

        committed = {"between-rename-and-manifest": {"a_onnx"}, "between-models": {"a_onnx"}}.get(phase.id, set())
        for model in MODELS:
            assert _versions(setup.repo, model) == (
                (["1", "2"], ["1", "2"]) if model in committed and phase.id == "between-models"
                else (["1", "2"], ["1"]) if model in committed else (["1"], ["1"]))

        actions = _rebuild(setup)
        want = {"between-rename-and-manifest": "repair-manifest", "between-models": "unchanged"}
        assert actions == {m: want.get(phase.id, "add-version") if m in committed else "add-version"
                           for m in MODELS}
        assert _staging(setup) == []
        for model in MODELS:
            assert _versions(setup.repo, model) == (["1", "2"], ["1", "2"])
        assert check_repository(setup.repo) == []


def test_a_first_build_killed_with_a_read_only_parent_is_named_and_removed() -> None:
    """No model directory to stage in yet: staging is at the top level, where check names it and serve and the
    next build remove it."""
    with _setup(None, parent_writable=False) as setup:
        _killed_build(setup, Phase("exporting", "build", "export", 2))
        (left,) = _staging(setup)
        assert left.parent == setup.repo
        assert [(f.code, f.severity) for f in check_repository(setup.repo)] == [("staging-leftover", "error")]
        with LocalTriton(setup.repo) as server:  # removes it, then serves the (empty) repository
            assert server.models() == []
        assert not left.exists()
        assert _rebuild(setup) == {m: "new" for m in MODELS}
        assert check_repository(setup.repo) == []
