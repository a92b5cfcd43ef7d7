"""The TorchScript file rules (pytorch_backend ``libtorch.cc``: ValidateInputs, ValidateOutputs,
GetNamingConvention). ``torch`` is imported only when a model file is read."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tritonclient.grpc import model_config_pb2 as pb

from ..loader import summary
from .codes import Hit
from .model import ModelView, fmt_list
from .sequence import CORRID, CORRID_TYPES, control_tensors

if TYPE_CHECKING:
    import torch


def _named_index(name: str) -> int | None:
    """The index of a ``<name>__<index>`` tensor name (split at the first ``__``, as the backend does)."""
    _, sep, tail = name.partition("__")
    return int(tail) if sep and tail.isascii() and tail.isdigit() else None


# pytorch_backend r24.10 libtorch_utils.cc ModelConfigDataTypeToTorchType: what a control tensor may be
_TORCH_TYPES = frozenset({"TYPE_BOOL", "TYPE_UINT8", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64",
                          "TYPE_FP16", "TYPE_FP32", "TYPE_FP64"})


def _follows_named_index(name: str) -> bool:
    """<name>__<index> as libtorch.cc GetNamingConvention tests it: digits (or nothing) after the first ``__``."""
    _, sep, tail = name.partition("__")
    return bool(sep) and all(c in "0123456789" for c in tail)


def _torch_sequence(m: ModelView) -> Iterator[Hit]:
    """libtorch.cc ValidateBooleanSequenceControl / ValidateTypedSequenceControl and GetNamingConvention: with
    sequence_batching (its state list is always present to the backend) every control, output and state tensor
    is <name>__<index>, and a CORRID control is of a type PyTorch has."""
    if not m.cfg.HasField("sequence_batching"):
        return
    for kind, (name, dtype) in control_tensors(m.cfg).items():
        if name and not _follows_named_index(name):
            yield "torch-sequence-naming", (f"sequence control '{name}' ({kind}) does not follow <name>__<index> "
                                            "(e.g. START__1): the pytorch backend refuses to load")
        if kind == CORRID and dtype in CORRID_TYPES and dtype not in _TORCH_TYPES:
            yield "torch-control-dtype", (f"sequence control '{name}' ({kind}) data_type {dtype}: PyTorch has no "
                                          "such type; use TYPE_INT64 or TYPE_INT32")
    state = m.cfg.sequence_batching.state
    names = [("output", t.name) for t in m.cfg.output] + [("state", n) for s in state for n in (
        s.input_name, s.output_name)]
    bad = [f"{what} '{name}'" for what, name in names if not _follows_named_index(name)]
    if bad:
        yield "torch-sequence-naming", (f"{', '.join(bad)} of a sequence-batching model does not follow "
                                        "<name>__<index>: the pytorch backend refuses to load")


def _forward_args(module: torch.jit.ScriptModule) -> list[tuple[str, str]]:
    """(name, type kind) of forward()'s arguments, without ``self``."""
    return [(a.name, a.type.kind()) for a in cast(Any, module.forward).schema.arguments if a.name != "self"]


def check_torchscript(m: ModelView) -> Iterator[Hit]:
    """The rules for a pytorch_libtorch model: output names, then each model file (the registry's validator).

    Without the torch package it raises ModuleNotFoundError before reading a file: check reports that as
    reader-missing, not as an unreadable file."""
    yield from _torch_sequence(m)
    for t in m.cfg.output:
        if _named_index(t.name) is None:
            yield "torch-output-name", (f"output '{t.name}' does not follow <name>__<index> (e.g. "
                                        "OUTPUT__0): TorchScript outputs carry no names, so the backend "
                                        "maps them by position and labels can silently swap")
        elif t.data_type == pb.TYPE_STRING and m.mbs > 0:  # libtorch.cc ReadOutputTensors, List[str] branch
            yield "torch-batched-strings", (
                f"output '{t.name}' is TYPE_STRING with max_batch_size {m.mbs}: the r24.10 pytorch backend copies "
                "the first elements of the returned List[str] into every response, so each request of a batch "
                "gets the first request's strings; serve it with max_batch_size 0 (or return a tensor)")
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
    # libtorch.cc ModelInstanceState: inputs + batch inputs + one per control kind + states
    extra = (len(m.cfg.batch_input) + len(control_tensors(m.cfg)) + len(m.cfg.sequence_batching.state))
    if len(names) + extra != len(args):
        more = f" (+ {extra} batch input, control and state tensors)" if extra else ""
        yield "torch-input-count", (f"the configuration has {len(names)} inputs{more} but {signature} takes "
                                    f"{len(args)}: the backend refuses to load")
    if m.cfg.HasField("sequence_batching") and names and (
            all(name in args for name in names) or not all(_follows_named_index(name) for name in names)):
        yield "torch-sequence-naming", (f"inputs ({fmt_list(names)}) of a sequence-batching model must all be "
                                        f"<name>__<index> (e.g. INPUT__0; {signature} argument names do not "
                                        "count there): the pytorch backend refuses to load")
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
