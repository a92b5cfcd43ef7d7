"""Staging directories of builds (``.tritonize-staging-*``), and which of them a killed build left behind.

A build stages into one of these, holding an ``flock`` on its ``.lock`` file while it runs; a kill -9 releases
the lock. Where they live and why is ``tritonize.generator.writer``'s business; finding and removing the stale
ones is shared by the writer (at the start of every build), ``check`` (a finding) and local serving (removed
before Triton starts: at a repository's top level, Triton would try to load one as a model).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, only the age rule
    fcntl = None  # type: ignore[assignment]

PREFIX = ".tritonize-staging-"
LOCK = ".lock"
LEGACY_STALE_S = 3600  # a staging directory without a lock file (older tritonize) is stale after this


def hold(lock: IO[bytes]) -> None:
    """Take the lock of a staging directory on its open lock file; closing it (or dying) releases it."""
    if fcntl is not None:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def is_stale(path: Path) -> bool:
    """Nobody holds its lock (or, without a lock file, it is older than ``LEGACY_STALE_S``)."""
    lock = path / LOCK
    if not lock.is_file():
        try:
            return time.time() - path.stat().st_mtime > LEGACY_STALE_S
        except OSError:
            return False
    if fcntl is None:  # pragma: no cover
        return False
    try:
        with lock.open("rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # its build is running
            fcntl.flock(f, fcntl.LOCK_UN)
            return True
    except OSError:
        return False


def staging_dirs(place: Path) -> list[Path]:
    try:
        return sorted(p for p in place.glob(PREFIX + "*") if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def remove_stale(repo: Path) -> list[Path]:
    """Remove the staging directories killed builds left in ``repo``'s parent (when writable), at its top
    level and in its model directories; returns them."""
    places = [repo, *(p for p in sorted(repo.iterdir()) if p.is_dir() and not p.is_symlink())]
    parent = repo.resolve().parent
    if os.access(parent, os.W_OK):
        places.insert(0, parent)
    removed = []
    for place in places:
        for path in staging_dirs(place):
            if is_stale(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed
