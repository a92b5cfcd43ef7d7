"""Logging and progress: library code logs to ``logging.getLogger("tritonize.<module>")`` and reports long
work through ``progress()``; only the CLI decides how either is shown (``install_cli_output``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROOT = "tritonize"
# Third-party loggers that chatter at INFO/WARNING during export and quantization; silenced by name only.
NOISY = ("onnxruntime", "onnxruntime.quantization", "torch.onnx", "torch._dynamo", "torch.export", "matplotlib")

_console: Any = None  # a rich Console once the CLI enables progress bars on a terminal
logging.getLogger(ROOT).addHandler(logging.NullHandler())  # a host that configures no logging sees nothing


def logger(module: str) -> logging.Logger:
    """``tritonize.<last part of module>``, e.g. ``logger(__name__)`` in tritonize.generator.build."""
    return logging.getLogger(f"{ROOT}.{module.rsplit('.', 1)[-1]}")


class _Lines(logging.Formatter):
    """The CLI's lines: the message, with ``warning:`` before warnings (what the tool always printed)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"warning: {text}" if record.levelno == logging.WARNING else text


def install_cli_output(*, verbose: bool = False, bars: bool | None = None) -> None:
    """One stderr handler on ``tritonize``; INFO and up (DEBUG with ``verbose``); progress bars when stderr is
    a terminal (``bars`` forces them on or off)."""
    global _console
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        if getattr(handler, "_tritonize_cli", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines())
    handler._tritonize_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
    _console = None
    if bars if bars is not None else sys.stderr.isatty():
        try:
            from rich.console import Console
        except ImportError:  # pragma: no cover - rich is a base dependency
            return
        _console = Console(file=sys.stderr)


@contextmanager
def quiet(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Only ``level`` and up from logger ``name`` while the block runs."""
    log = logging.getLogger(name)
    previous = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(previous)


class Progress:
    """A unit of long work: ``advance()`` by steps out of ``total`` (None: unknown), ``describe()`` the step."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar, self._task = bar, task

    def advance(self, steps: float = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Progress]:
    """A progress bar on the CLI's terminal; nothing elsewhere (library use, pipes, CI logs)."""
    if _console is None:
        yield Progress()
        return
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    count = TextColumn("{task.completed:g}/{task.total:g}" if total else "")
    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), count,
               TimeElapsedColumn())
    with Bar(*columns, console=_console, transient=True) as bar:
        yield Progress(bar, bar.add_task(description, total=total))
