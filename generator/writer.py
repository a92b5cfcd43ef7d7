"""Write staged models into a repository atomically, without losing anything.

A model is staged complete in a temporary directory on the repository's filesystem, then renamed into
place: a Triton polling the repository never sees half a model. Into an existing model, only the new
version directory is renamed in; model-level files (config.pbtxt, labels, warmup data, configs/) must be
identical to what is there unless ``overwrite``. Existing versions are never touched, except the one being
rebuilt with ``overwrite``. ``plan`` checks every conflict before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RepositoryError

MANIFEST = "tritonize-manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


@contextmanager
def staging_area(repo: Path) -> Iterator[Path]:
    """A temporary directory on the same filesystem as ``repo`` (so renames are atomic)."""
    repo.mkdir(parents=True, exist_ok=True)
    parent = repo.resolve().parent
    where = parent if os.stat(parent).st_dev == os.stat(repo).st_dev and os.access(parent, os.W_OK) else repo
    path = Path(tempfile.mkdtemp(prefix=".tritonize-staging-", dir=where))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _dump(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def plan(repo: Path, staged: StagedModel, overwrite: bool) -> str:
    """What ``commit`` will do: 'new', 'add-version', 'replace-version' or 'unchanged'. Raises on conflicts."""
    target = repo / staged.name
    if not target.exists():
        return "new"
    if not (target / "config.pbtxt").is_file() and not (target / MANIFEST).is_file():
        if overwrite:
            return "new"
        raise RepositoryError(f"{target}: exists but is not a model directory; remove it or pass --overwrite")
    changed = [rel for rel, digest in staged.file_hashes().items()
               if not (target / rel).is_file() or sha256(target / rel) != digest]
    if changed and not overwrite:
        raise RepositoryError(
            f"model {staged.name}: {', '.join(changed)} would change (it applies to every version); pass "
            "--overwrite to replace the model-level files, or build under another name")
    version_dir = target / str(staged.version)
    if version_dir.exists():
        new = staged.root / str(staged.version)
        same = sorted(p.name for p in version_dir.iterdir()) == sorted(p.name for p in new.iterdir()) and all(
            sha256(version_dir / p.name) == sha256(p)
            or (staged.equivalent is not None and staged.equivalent(version_dir / p.name, p))
            for p in new.iterdir() if p.is_file())
        if same and not changed:
            return "unchanged"
        if not overwrite:
            raise RepositoryError(f"model {staged.name}: version {staged.version} exists with other content; "
                                  "pass --overwrite to replace it, or build a new version")
        return "replace-version"
    return "add-version"


def commit(repo: Path, staged: StagedModel, action: str) -> None:
    """Move a planned model into ``repo``. Manifest entries of other versions are kept."""
    target = repo / staged.name
    manifest_path = staged.root / MANIFEST
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
    old_manifest = json.loads((target / MANIFEST).read_text()) if (target / MANIFEST).is_file() else {}
    versions = {**old_manifest.get("versions", {}), str(staged.version): staged.manifest_entry}
    manifest["versions"] = {k: versions[k] for k in sorted(versions, key=int)}
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
