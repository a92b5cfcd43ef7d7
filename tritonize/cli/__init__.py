"""The ``tritonize`` command line: one click group; one module per command group, each command a module-level
click command (importable by tests). Heavy modules (torch, the generator) are imported inside the commands that
need them, so ``tritonize --help`` works in a client-only install.
"""

from __future__ import annotations

import os
from typing import Any

import click

from tritonize.core.errors import TritonizeError
from tritonize.core.loader import summary
from tritonize.core.log import install_cli_output

from .bench import bench_command
from .build import build_command, export_command
from .check import check_command
from .deploy import deploy_command
from .gateway import gateway_command
from .infer import infer_command
from .monitor import monitor_command
from .quickstart import quickstart_command
from .serve import serve_command
from .stubs import client_stubs_command

# In the order of the workflow: try it, make a repository, lint it, serve it, call it, measure it.
COMMANDS = (quickstart_command, export_command, build_command, check_command, serve_command, client_stubs_command,
            infer_command, bench_command, deploy_command, monitor_command, gateway_command)


def _usage_line(exc: click.UsageError) -> str:
    """click's usage error as one line: its message and where to read more (not the usage block)."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return "error: " + " ".join(exc.format_message().split()) + where


class _Group(click.Group):
    """Commands in workflow order; tritonize errors become one line on stderr and their exit code, and so do
    click's usage errors (exit 2) and an ``OSError`` (a name too long, a read-only repository, a full disk:
    exit 1). Anything else is a bug and keeps its traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:  # the group's own options (tritonize --bogus)
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            click.echo(_usage_line(exc), err=True)
            raise SystemExit(exc.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a command's arguments and options
            click.echo(_usage_line(exc), err=True)
            ctx.exit(exc.exit_code)
        except TritonizeError as exc:
            if os.environ.get("TRITONIZE_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if os.environ.get("TRITONIZE_DEBUG"):
                raise
            click.echo(f"error: {summary(exc)}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritonize")
@click.option("-v", "--verbose", is_flag=True, help="Debug lines from tritonize's loggers.")
def main(verbose: bool) -> None:
    """tritonize: PyTorch model -> verified TorchScript/ONNX -> Triton model repository.

    Set TRITONIZE_DEBUG=1 to see tracebacks; TRITONIZE_URL sets --url.
    """
    install_cli_output(verbose=verbose)


for _command in COMMANDS:
    main.add_command(_command)
