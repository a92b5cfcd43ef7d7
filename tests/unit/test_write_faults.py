"""Faults while writing a repository (issue 10, items 1, 2 and 18): where staging happens when the repository's
parent is not writable, stale staging directories left by a kill, a version committed without its manifest
entry, a multi-model build failing between two models' commits, and symlinked model directories."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tritonize.core.check import check_repository
from tritonize.generator import build as build_module
from tritonize.generator import writer
from tritonize.generator.build import build
from tritonize.generator.errors import RepositoryError
from tritonize.generator.request import ModelRequest
from tritonize.generator.writer import MANIFEST, sha256

TOY = str(Path(__file__).parent / "toy_models.py")
MODEL = "mlp_onnx"


def mlp(version: int | None = None, formats: tuple[str, ...] = ("onnx",)) -> ModelRequest:
    return ModelRequest(name="mlp", source=f"{TOY}:mlp", formats=formats, max_batch_size=4, version=version)


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def staging_dirs(where: Path) -> list[str]:
    return sorted(p.name for p in where.glob(".tritonize-staging-*"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def left_by_a_kill(where: Path, name: str) -> Path:
    """A staging directory as a kill -9 leaves it: its lock file is there, nobody holds the lock."""
    path = where / name
    (path / MODEL / "1").mkdir(parents=True)
    (path / MODEL / "1" / "model.onnx").write_bytes(b"half an export")
    (path / ".lock").write_text("")
    return path


@pytest.fixture
def parent_not_writable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The repository ``tmp_path/repo`` on a volume whose parent cannot be written (tests run as root: chmod
    would not stop them)."""
    repo = tmp_path / "repo"
    real_access = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(path)).resolve() == tmp_path.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    return repo


# -- item 1: staging ---------------------------------------------------------------------------------------------

def test_stale_staging_directories_are_removed_at_the_start_of_a_build(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    build([mlp(1)], repo)
    stale = [left_by_a_kill(tmp_path, f".tritonize-staging-{dead_pid()}-abc123"),
             left_by_a_kill(repo, f".tritonize-staging-{dead_pid()}-def456"),
             left_by_a_kill(repo / MODEL, f".tritonize-staging-{dead_pid()}-ghi789")]
    legacy = tmp_path / ".tritonize-staging-k2j4h5"  # made before staging directories had a lock file
    (legacy / MODEL).mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    os.utime(legacy, (two_hours_ago, two_hours_ago))
    recent_legacy = tmp_path / ".tritonize-staging-recent"  # no lock file yet, just made: maybe a live build
    recent_legacy.mkdir()
    live = left_by_a_kill(tmp_path, f".tritonize-staging-{os.getpid()}-live00")  # a concurrent build
    with (live / ".lock").open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        results = build([mlp(2)], repo)
        assert [r.action for r in results] == ["add-version"]
        assert staging_dirs(tmp_path) == sorted([live.name, recent_legacy.name])
        assert staging_dirs(repo) == [] and staging_dirs(repo / MODEL) == []
    assert not any(p.exists() for p in [*stale, legacy])


def test_a_parent_that_is_not_writable_never_stages_directly_in_the_repository(
        parent_not_writable: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo = parent_not_writable
    repo.mkdir()
    build([mlp(1)], tmp_path / "elsewhere")  # an existing model, copied in by hand
    shutil.copytree(tmp_path / "elsewhere" / MODEL, repo / MODEL)
    seen: list[list[str]] = []

    def killed(*args: object) -> None:  # kill -9 after staging, before the first rename
        seen.append(staging_dirs(repo))
        raise KeyboardInterrupt

    real_commit, real_rmtree = build_module.commit, shutil.rmtree
    monkeypatch.setattr(build_module, "commit", killed)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # a killed build cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        build([mlp(2)], repo)
    monkeypatch.setattr(build_module, "commit", real_commit)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert seen == [[]] and staging_dirs(repo) == []
    assert staging_dirs(tmp_path) == []  # the parent was not written either
    assert len(staging_dirs(repo / MODEL)) == 1  # left inside a model directory: Triton ignores it as a version
    assert [f for f in check_repository(repo) if f.severity == "error"] == []

    results = build([mlp(2)], repo)  # the next build removes what the kill left
    assert [r.action for r in results] == ["add-version"]
    assert staging_dirs(repo) == [] and staging_dirs(repo / MODEL) == [] and staging_dirs(tmp_path) == []
    assert sorted(json.loads((repo / MODEL / MANIFEST).read_text())["versions"]) == ["1", "2"]


def test_a_parent_that_is_not_writable_still_builds_into_an_empty_repository(parent_not_writable: Path,
                                                                             tmp_path: Path) -> None:
    repo = parent_not_writable
    results = build([mlp(1)], repo)
    assert [r.action for r in results] == ["new"]
    assert staging_dirs(repo) == [] and staging_dirs(tmp_path) == [] and staging_dirs(repo / MODEL) == []


# -- item 2: a version without its manifest entry ------------------------------------------------------------------

def test_a_version_committed_without_its_manifest_entry_is_repaired(tmp_path: Path) -> None:
    build([mlp(1)], tmp_path)
    build([mlp(2)], tmp_path)
    manifest_path = tmp_path / MODEL / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    complete = manifest["versions"]["2"]
    del manifest["versions"]["2"]  # kill -9 between the version's rename and the manifest write
    manifest_path.write_text(json.dumps(manifest))
    results = build([mlp(2)], tmp_path)
    assert [r.action for r in results] == ["repair-manifest"]
    repaired = json.loads(manifest_path.read_text())
    assert sorted(repaired["versions"]) == ["1", "2"]
    assert repaired["versions"]["2"] == complete
    assert repaired["versions"]["2"]["artifact"]["sha256"] == sha256(tmp_path / MODEL / "2" / "model.onnx")
    assert [r.action for r in build([mlp(2)], tmp_path)] == ["unchanged"]  # repaired once, then left alone


def test_a_manifest_entry_recording_another_artifact_is_repaired(tmp_path: Path) -> None:
    build([mlp(1)], tmp_path)
    manifest_path = tmp_path / MODEL / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"]["1"]["artifact"]["sha256"] = "0" * 64  # kill between a replace-version's rename and
    manifest_path.write_text(json.dumps(manifest))  # the manifest write: the old artifact's entry is left
    assert [r.action for r in build([mlp(1)], tmp_path)] == ["repair-manifest"]
    entry = json.loads(manifest_path.read_text())["versions"]["1"]
    assert entry["artifact"]["sha256"] == sha256(tmp_path / MODEL / "1" / "model.onnx")


def test_a_failing_commit_after_another_model_logs_what_was_committed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_commit = build_module.commit
    calls: list[str] = []

    def second_fails(repo: Path, staged: writer.StagedModel, action: str) -> None:
        calls.append(staged.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_commit(repo, staged, action)

    monkeypatch.setattr(build_module, "commit", second_fails)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("tritonize.build")
    log.addHandler(handler)
    try:
        with pytest.raises(OSError):
            build([mlp(1, formats=("onnx", "torchscript"))], tmp_path)
    finally:
        log.removeHandler(handler)
    lines = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert any(calls[0] in line and calls[1] in line and "committed" in line for line in lines), lines
    assert (tmp_path / calls[0] / MANIFEST).is_file() and not (tmp_path / calls[1]).exists()


# -- item 18: symlinks out of the repository ----------------------------------------------------------------------

def test_a_model_directory_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside, repo = tmp_path / "outside", tmp_path / "repo"
    build([mlp(1)], outside)
    repo.mkdir()
    (repo / MODEL).symlink_to(outside / MODEL)
    before = tree(outside)
    with pytest.raises(RepositoryError) as err:
        build([mlp(2)], repo)
    message = str(err.value)
    assert "\n" not in message and str(repo / MODEL) in message and "symlink" in message
    assert tree(outside) == before and staging_dirs(repo / MODEL) == []
    results = build([mlp(2)], repo, follow_symlinks=True)  # asked for: written through
    assert [r.action for r in results] == ["add-version"] and (outside / MODEL / "2" / "model.onnx").is_file()


def test_a_version_directory_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside, repo = tmp_path / "outside", tmp_path / "repo"
    build([mlp(1)], repo)
    shutil.move(str(repo / MODEL / "1"), str(outside))
    (repo / MODEL / "1").symlink_to(outside)
    before = tree(outside)
    with pytest.raises(RepositoryError) as err:
        build([mlp(1)], repo, overwrite=True)
    assert "\n" not in str(err.value) and str(repo / MODEL / "1") in str(err.value)
    assert tree(outside) == before


def test_a_symlink_that_stays_in_the_repository_is_followed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    build([mlp(1)], repo)
    (repo / "real").mkdir()
    shutil.move(str(repo / MODEL / "1"), str(repo / "real" / "1"))
    (repo / MODEL / "1").symlink_to(repo / "real" / "1")
    assert [r.action for r in build([mlp(1)], repo)] == ["unchanged"]
