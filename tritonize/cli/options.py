"""What the commands share: the ``--output``, ``--url`` and ``--triton-version`` options, printing tables, importing
the generator."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import click

from tritonize.core import releases
from tritonize.core.errors import UsageError
from tritonize.core.text import Table, render

output_option = click.option("--output", "output", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Print tables as aligned text or as JSON records.")


def url_option(default: str | None = "localhost:8001", help: str = "") -> Any:
    """``--url``, defaulting to $TRITONIZE_URL."""
    return click.option("--url", envvar="TRITONIZE_URL", default=default, show_default=True, show_envvar=True,
                        help=help or "host:port (gRPC), grpc://host:port or http://host:port.")


def triton_version_option(default: str | None, help: str) -> Any:
    """``--triton-version``: the NGC release that serves the repository (``tritonize.core.releases``)."""
    known = f"{min(releases.RELEASES)} to {max(releases.RELEASES)}"
    return click.option("--triton-version", default=default, show_default=default is not None, metavar="YY.MM",
                        help=f"{help} Known releases: {known} (tritonize/core/releases.py).")


def target_release(value: str) -> str:
    """``value`` if tritonize knows that release, else a one-line SpecError naming ``--triton-version``."""
    return releases.get(value, "--triton-version").name


def echo_tables(tables: dict[str, Table], output: str) -> None:
    text = render(tables, output)
    if text:
        click.echo(text)


def generator(module: str) -> ModuleType:
    """Import a generator module, or say which extras are missing."""
    try:
        return importlib.import_module(f"tritonize.generator.{module}")
    except ImportError as exc:
        raise UsageError(f"this command needs the build extras ({exc.name} is missing): "
                         "pip install 'tritonize[generator]' torch==2.13.0") from None
