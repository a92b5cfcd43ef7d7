"""The TorchScript file rules (pytorch_backend ``libtorch.cc``: ValidateInputs, ValidateOutputs,
GetNamingConvention). ``torch`` is imported only when a model file is read."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..loader import summary
from .codes import Hit
from .model import ModelView

if TYPE_CHECKING:
    import torch


def _named_index(name: str) -> int | None:
    """The index of a ``<name>__<index>`` tensor name (split at the first ``__``, as the backend does)."""
    _, sep, tail = name.partition("__")
    return int(tail) if sep and tail.isascii() and tail.isdigit() else None


def _forward_args(module: torch.jit.ScriptModule) -> list[tuple[str, str]]:
    """(name, type kind) of forward()'s arguments, without ``self``."""
    return [(a.name, a.type.kind()) for a in cast(Any, module.forward).schema.arguments if a.name != "self"]


def check_torchscript(m: ModelView) -> Iterator[Hit]:
    """The rules for a pytorch_libtorch model: output names, then each model file (the registry's validator).

    Without the torch package it raises ModuleNotFoundError before reading a file: check reports that as
    reader-missing, not as an unreadable file."""
    for t in m.cfg.output:
        if _named_index(t.name) is None:
            yield "torch-output-name", (f"output '{t.name}' does not follow <name>__<index> (e.g. "
                                        "OUTPUT__0): TorchScript outputs carry no names, so the backend "
                                        "maps them by position and labels can silently swap")
    artifacts = []
    for version, path in m.artifacts():  # the target's PyTorch refuses a newer archive before it reads anything
        problem = m.target.torchscript_problem(file_format(path) or 0)
        if problem:
            yield "torchscript-too-new", f"version {version} '{m.model_filename}': {problem}"
        else:
            artifacts.append((version, path))
    if not artifacts:
        return
    import torch  # outside the try below

    for version, path in artifacts:
        try:
            args = _forward_args(torch.jit.load(str(path), map_location="cpu"))
        except Exception as exc:  # a user file that does not load is a finding, not a crash
            yield "model-unreadable", (f"version {version} '{m.model_filename}' does not load: "
                                       f"{summary(exc)}")
            continue
        if not (len(args) == 1 and args[0][1] == "DictType"):  # a Dict input is keyed by the config names
            yield from _torch_inputs(m, [name for name, _ in args])


def file_format(path: Path) -> int | None:
    """The file format version a TorchScript archive records in ``<archive>/.data/version`` or ``<archive>/version``
    (torch.jit.save writes the lowest its operators allow), which torch.jit.load compares with its
    kMaxSupportedFileFormatVersion; None when the file is no such zip archive (torch.jit.load then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            prefix = names[0].split("/", 1)[0] if names else ""
            for record in (f"{prefix}/.data/version", f"{prefix}/version"):
                if record in names:
                    return int(archive.read(record).decode().strip())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    return None


def _torch_inputs(m: ModelView, args: list[str]) -> Iterator[Hit]:
    names = [t.name for t in m.cfg.input]
    signature = f"forward({', '.join(args)})"
    if len(names) != len(args):
        yield "torch-input-count", (f"the configuration has {len(names)} inputs but {signature} takes "
                                    f"{len(args)}: the backend refuses to load")
    by_arg = [name for name in names if name in args]
    by_index = []
    for name in names:
        index = None if name in args else _named_index(name)
        if name in args:
            continue
        if index is None:
            yield "torch-input-name", (f"input '{name}' is neither an argument of {signature} nor "
                                       "<name>__<index>: the backend falls back to config order")
        elif index >= len(args):
            yield "torch-input-name", f"input '{name}' has index {index} but {signature} has {len(args)}"
        else:
            by_index.append(name)
    if by_arg and by_index and len(by_arg) + len(by_index) == len(names):
        yield "torch-mixed-naming", (f"inputs ({', '.join(names)}) mix {signature} argument names and "
                                     "<name>__<index>: the backend then ignores both and uses config order")
