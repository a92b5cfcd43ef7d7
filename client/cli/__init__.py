"""The ``tritonize`` command line: one click group, one module per command group.

Heavy modules (torch, the generator) are imported inside the commands that need them, so
``tritonize --help`` works in a client-only install.
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import TritonizeError
from .bench import add_bench_command
from .generate import add_build_command, add_check_command, add_export_command
from .infer import add_infer_command
from .quickstart import add_quickstart_command
from .serve import add_serve_command
from .stubs import add_client_stubs_command


class _Group(click.Group):
    """Turns tritonize errors into one line on stderr and their exit code (2 usage, 1 failure)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TritonizeError as exc:
            if os.environ.get("TRITONIZE_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritonize")
def main() -> None:
    """tritonize: PyTorch model -> verified TorchScript/ONNX -> Triton model repository.

    Set TRITONIZE_DEBUG=1 to see tracebacks.
    """


add_export_command(main)
add_build_command(main)
add_check_command(main)
add_serve_command(main)
add_infer_command(main)
add_client_stubs_command(main)
add_bench_command(main)
add_quickstart_command(main)
