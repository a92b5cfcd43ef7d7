"""``tritonize check``: lint any Triton model repository (ours or not)."""

from __future__ import annotations

from pathlib import Path

import click

from tritonize.core import releases
from tritonize.core.text import Table

from .options import echo_tables, output_option, target_release, triton_version_option


@click.command("check")
@click.argument("repo", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@triton_version_option(releases.LOCAL, "The NGC release that will serve it: a model file its ONNX Runtime or PyTorch "
                       "cannot load is an error.")
@click.option("--disable-auto-complete-config", "no_autocomplete", is_flag=True,
              help="Check for a tritonserver run with this flag: what only backend auto-complete would make "
                   "loadable is an error.")
@output_option
def check_command(repo: Path, strict: bool, triton_version: str, no_autocomplete: bool, output: str) -> None:
    """Lint any Triton model repository (ours or not): configs, files, IO against the model files.

    \b
    Example:
      tritonize check model_repository/
      tritonize check model_repository/ --triton-version 23.10
      tritonize check model_repository/ --disable-auto-complete-config
    """
    from tritonize.core.check import check_repository

    findings = check_repository(repo, target_release(triton_version), autocomplete=not no_autocomplete)
    table = Table(("severity", "model", "code", "message"), free_last=True, formats={"model": lambda m: m or "-"})
    for f in findings:
        table.add(f.severity, f.model, f.code, f.message)
    echo_tables({"findings": table}, output)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    click.echo(f"{repo}: {errors} error(s), {warnings} warning(s)", err=True)
    if errors or (strict and warnings):
        raise click.exceptions.Exit(1)
