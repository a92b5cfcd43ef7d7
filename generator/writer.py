"""Write staged models into a repository atomically, without losing anything.

A model is staged complete in a temporary directory on the repository's filesystem, then renamed into
place: a Triton polling the repository never sees half a model. Into an existing model, only the new
version directory is renamed in; model-level files (config.pbtxt, labels, warmup data, configs/) must be
identical to what is there unless ``overwrite``. Existing versions are never touched, except the one being
rebuilt with ``overwrite``. ``plan`` checks every conflict before anything is written.

Where staging happens (``staging_area``): in the repository's parent when it is writable and on the same
filesystem (the usual case: nothing of a build is ever inside the repository before its rename). Otherwise
(a mounted volume) it must be inside the repository, and Triton loads every subdirectory of a repository as
a model, hidden ones too: a staging directory there that a kill -9 leaves stops the server from starting. So
it goes into an existing model directory instead, as a non-numeric subdirectory that Triton ignores as a
version (``tritonize check`` warns of it, version-dir-ignored) -- a model of the build when one exists, and
only one whose config names its backend or platform (Triton auto-detects a backend from the first
subdirectory). A polling Triton may reload that model when the directory appears; the versions it serves
are unchanged. Only a repository without any such model (a first build) stages at its top level; a kill
then leaves a directory there that ``check`` reports (staging-leftover) and the next build or local serve
removes (``tritonize.core.staging``). A new model's directory is never made before its
rename: a half-made model would be worse than a leftover the next build removes.

Every staging directory holds a lock (``flock``) for as long as its build runs; a kill -9 releases it. At
the start of every build, the staging directories whose lock nobody holds (and those without a lock file,
from older versions, after an hour) are removed, in the parent, at the top of the repository and in its
model directories (``tritonize.core.staging``). The process id in a staging directory's name is for people
only: pids are reused and differ between containers.

``commit`` is atomic per model. A kill between a version's rename and its manifest write leaves a version
without its manifest entry; the next build of it finds the version identical and repairs the manifest
(action ``repair-manifest``).

Symlinks: a model or version directory that is a symlink resolving outside the repository is refused unless
``follow_symlinks`` (the build would write through it, somewhere else).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.core.distribution import KEY as DISTRIBUTION_KEY
from tritonize.core.manifest import MANIFEST, gaps, sha256
from tritonize.core.staging import LOCK, PREFIX, hold, remove_stale

from .errors import RepositoryError


def existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and p.name[0] != "0")


@dataclass
class StagedModel:
    """A complete model directory under ``root`` (``root/config.pbtxt``, ``root/<version>/...``)."""

    name: str
    root: Path
    version: int
    manifest_entry: dict[str, Any]  # this version's record
    model_files: list[str] = field(default_factory=list)  # model-level files, relative to root
    # Decides whether two artifact files with different bytes are the same model (TorchScript renames types
    # when one process traces the same class twice); None: bytes must match.
    equivalent: Callable[[Path, Path], bool] | None = None

    def file_hashes(self) -> dict[str, str]:
        return {rel: sha256(self.root / rel) for rel in sorted(self.model_files)}


def _host(repo: Path, models: Sequence[str]) -> Path:
    """Inside ``repo``, where staging does Triton no harm: an existing model directory (of ``models`` first)
    whose config names its backend or platform; ``repo`` itself when there is none."""
    device = os.stat(repo).st_dev
    others = sorted(p.name for p in repo.iterdir() if p.name not in models)
    for name in [*models, *others]:
        path = repo / name
        config = path / "config.pbtxt"
        try:
            if (path.is_symlink() or not path.is_dir() or not config.is_file() or os.stat(path).st_dev != device
                    or not os.access(path, os.W_OK)):
                continue
            text = config.read_text(errors="replace")
        except OSError:
            continue
        if any(line.strip().startswith(("backend:", "platform:")) for line in text.splitlines()):
            return path
    return repo


@contextmanager
def staging_area(repo: Path, models: Sequence[str] = ()) -> Iterator[Path]:
    """A temporary directory on the same filesystem as ``repo`` (so renames are atomic), locked while in use;
    ``models``: the build's model names (preferred hosts when staging must be inside ``repo``)."""
    repo.mkdir(parents=True, exist_ok=True)
    remove_stale(repo)
    parent = repo.resolve().parent
    writable = os.stat(parent).st_dev == os.stat(repo).st_dev and os.access(parent, os.W_OK)
    where = parent if writable else _host(repo, models)
    if not os.access(where, os.W_OK):
        raise RepositoryError(f"repository {repo}: not writable by this user (uid {os.geteuid()}); build as its "
                              "owner, or into another --repo")
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=where))
    lock = (path / f"{LOCK}.new").open("wb")  # locked before it has the name a cleaner looks for
    try:
        hold(lock)
        os.rename(path / f"{LOCK}.new", path / LOCK)
        yield path
    finally:
        lock.close()
        shutil.rmtree(path, ignore_errors=True)


def _dump(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _outside(path: Path, repo: Path) -> bool:
    return path.is_symlink() and not path.resolve().is_relative_to(repo.resolve())


def _refuse_symlinks(repo: Path, staged: StagedModel) -> None:
    for path in (repo / staged.name, repo / staged.name / str(staged.version)):
        if _outside(path, repo):
            raise RepositoryError(f"{path}: is a symlink to {path.resolve()}, outside the repository {repo}; "
                                  "a build would write there: replace it with a directory, or build with "
                                  "follow_symlinks=True")


def _read_manifest(target: Path) -> dict[str, Any]:
    path = target / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: not a valid manifest ({exc}); restore it, or remove it and rebuild") from None
    return manifest if isinstance(manifest, dict) else {}


def _manifest_needs_repair(target: Path, staged: StagedModel) -> bool:
    """The version is there and identical, but the manifest does not record it (a kill between the rename
    and the manifest write), records another artifact, or other model-level files, or lacks the outputs'
    reference distribution (a version built before tritonize recorded it)."""
    manifest = _read_manifest(target)
    versions = manifest.get("versions")
    entry = versions.get(str(staged.version)) if isinstance(versions, dict) else None
    artifact = entry.get("artifact") if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(artifact, dict) or (
            artifact.get("file") != staged.manifest_entry["artifact"]["file"]):
        return True
    return (not (target / str(artifact["file"])).is_file() or bool(gaps(target, [staged.version]))
            or manifest.get("files") != staged.file_hashes()
            or (DISTRIBUTION_KEY in staged.manifest_entry and DISTRIBUTION_KEY not in entry))


def _listing(version_dir: Path) -> list[str]:
    """A version's entries, without the bytecode a served python model's imports leave (``__pycache__``)."""
    return sorted(p.name for p in version_dir.iterdir() if p.name != "__pycache__")


def plan(repo: Path, staged: StagedModel, overwrite: bool, *, follow_symlinks: bool = False) -> str:
    """What ``commit`` will do: 'new', 'add-version', 'replace-version', 'repair-manifest' or 'unchanged'.
    Raises on conflicts, and on symlinks out of the repository unless ``follow_symlinks``."""
    if not follow_symlinks:
        _refuse_symlinks(repo, staged)
    target = repo / staged.name
    if not target.exists():
        return "new"
    if not (target / "config.pbtxt").is_file() and not (target / MANIFEST).is_file():
        if overwrite:
            return "new"
        raise RepositoryError(f"{target}: exists but is not a model directory; remove it or pass --overwrite")
    _read_manifest(target)  # commit reads it: an unreadable one fails here, before anything is written
    changed = [rel for rel, digest in staged.file_hashes().items()
               if not (target / rel).is_file() or sha256(target / rel) != digest]
    if changed and not overwrite:
        raise RepositoryError(
            f"model {staged.name}: {', '.join(changed)} would change (it applies to every version); pass "
            "--overwrite to replace the model-level files, or build under another name")
    version_dir = target / str(staged.version)
    if version_dir.exists():
        new = staged.root / str(staged.version)
        same = _listing(version_dir) == _listing(new) and all(
            sha256(version_dir / p.name) == sha256(p)
            or (staged.equivalent is not None and staged.equivalent(version_dir / p.name, p))
            for p in new.iterdir() if p.is_file())
        if same and not changed:
            return "repair-manifest" if _manifest_needs_repair(target, staged) else "unchanged"
        if not overwrite:
            raise RepositoryError(f"model {staged.name}: version {staged.version} exists with other content; "
                                  "pass --overwrite to replace it, or build a new version")
        return "replace-version"
    return "add-version"


def commit(repo: Path, staged: StagedModel, action: str) -> None:
    """Move a planned model into ``repo``. Manifest entries of other versions are kept. 'repair-manifest' moves
    nothing: the manifest gets the version's entry, recording the artifact that is in the repository."""
    target = repo / staged.name
    manifest_path = staged.root / MANIFEST
    if action == "repair-manifest":
        on_disk = target / staged.manifest_entry["artifact"]["file"]
        staged.manifest_entry = {**staged.manifest_entry, "artifact": {
            **staged.manifest_entry["artifact"], "sha256": sha256(on_disk), "bytes": on_disk.stat().st_size}}
    manifest = {"model": staged.name, "files": staged.file_hashes(),
                "versions": {str(staged.version): staged.manifest_entry}}
    if action == "unchanged":
        return
    if action == "new":
        _atomic_write(manifest_path, _dump(manifest))
        if target.exists():  # overwrite of a non-model directory
            trash = Path(tempfile.mkdtemp(prefix=".tritonize-old-", dir=staged.root.parent))
            os.rename(target, trash / "old")
        os.rename(staged.root, target)
        return
    old_manifest = _read_manifest(target)
    versions = {**old_manifest.get("versions", {}), str(staged.version): staged.manifest_entry}
    manifest["versions"] = {k: versions[k] for k in sorted(versions, key=int)}
    if action != "repair-manifest":
        version_dir = target / str(staged.version)
        if action == "replace-version":
            trash = Path(tempfile.mkdtemp(prefix=".tritonize-old-", dir=staged.root.parent))
            os.rename(version_dir, trash / "old")
        os.rename(staged.root / str(staged.version), version_dir)
        for rel in sorted(staged.model_files):  # identical unless overwrite
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.root / rel, dest)
    _atomic_write(target / MANIFEST, _dump(manifest))
