"""What the torch-based exporters share: quiet export, dict outputs as tuples, example arguments."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from tritonize.core.log import logger

from ..adapters import with_forward
from ..errors import SpecError
from ..source import LoadedModel

_log = logger(__name__)
# Libraries whose own TracerWarnings are known harmless (e.g. transformers' mask checks); verification at other
# sizes is what proves a trace generalizes, and the user's code is not among them.
LIBRARIES = ("torch", "torchvision", "transformers", "sentence_transformers")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    dirs: list[str] = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs += [os.path.realpath(d) + os.sep for d in spec.submodule_search_locations]
    return tuple(dirs)


def from_library(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_library_dirs())


@contextmanager
def quiet_export(record: list[str]) -> Iterator[None]:
    """Silence PyTorch's deprecation chatter; keep TracerWarnings (data-dependent control flow hints) raised in
    the user's code, and drop those raised inside ``LIBRARIES`` (counted at debug level). The libraries' loggers
    are quieted too: tracing reads every property of their modules (deprecated ones, ``loss_function``) and each
    read logs a warning."""
    loggers = [logging.getLogger(name) for name in LIBRARIES[2:]]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)
    dropped = set()
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            line = f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0]}"
            if from_library(w.filename):
                dropped.add(line)
            elif line not in record:
                record.append(line)
    if dropped:
        _log.debug(f"{len(dropped)} TracerWarning(s) from library code dropped: {'; '.join(sorted(dropped))}")


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """The TorchScript-based ONNX exporter dumps its whole IR graph from C++ on failure; keep errors one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def _tuple_adapter(module: torch.nn.Module, input_names: list[str], keys: list[str]) -> torch.nn.Module:
    """Wrap a module whose forward returns a dict so it returns a tuple, keeping the argument names."""
    return with_forward("TupleOutputs", module, input_names, f"self.pick(self.inner({', '.join(input_names)}))",
                        pick=lambda self, out: tuple(out[k] for k in self.keys), keys=keys)


def exportable(loaded: LoadedModel, script: bool) -> torch.nn.Module:
    assert loaded.module is not None
    if not loaded.output_keys:
        return loaded.module
    if script:
        raise SpecError("--script", True, "a forward() returning a Tensor or a tuple (it returns a dict); "
                        "TorchScript outputs for Triton are positional")
    if not all(n.isidentifier() for n in (i.name for i in loaded.inputs)):
        raise SpecError("inputs", [i.name for i in loaded.inputs], "Python identifiers")
    return _tuple_adapter(loaded.module, [i.name for i in loaded.inputs], loaded.output_keys)


def example_args(loaded: LoadedModel) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(loaded.example_batch[i.name].copy()) for i in loaded.inputs)


def from_callable(loaded: LoadedModel, fmt: str) -> None:
    """Optimized formats transform the module itself: refuse a .pt/.onnx source."""
    if loaded.module is None or loaded.kind != "callable":
        raise SpecError("formats", fmt, f"{fmt} from a model callable (not from a .pt/.onnx file)")
