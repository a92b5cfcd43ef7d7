"""Render a target's assets for a repository and write them as one folder, atomically."""

from __future__ import annotations

from pathlib import Path

from . import compose, kserve, kubernetes
from .files import write_folder
from .plan import Options, read_plan


def render(repo: Path, options: Options, out: Path) -> dict[str, str]:
    """The files of ``options.target``'s asset folder ``out`` (relative path -> text); nothing is written."""
    plan = read_plan(repo, options)
    if options.target == "compose":
        return compose.files(plan, compose.relative_repo(plan, str(out)))
    if options.target == "kubernetes":
        return kubernetes.files(plan)
    return kserve.files(plan)


def deploy(repo: Path, options: Options, out: Path | None = None, force: bool = False) -> list[Path]:
    """Write the assets into ``out`` (default ``deploy/<target>`` of the current directory); the paths written."""
    out = Path("deploy") / options.target if out is None else out
    return write_folder(out, render(repo, options, out), force=force)
