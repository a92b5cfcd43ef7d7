"""Export a loaded model to TorchScript (trace or script) and ONNX, and check the files load.

Tracing records one path through the model: its warnings are kept so that a parity failure can say
"use --script". ONNX is exported with a dynamic batch axis plus the variable dims of the IO spec, then
checked with ``onnx.checker`` (full check: strict shape inference) and loaded in onnxruntime.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ExportError, SpecError
from .runners import OnnxRunner, Runner, TorchRunner
from .source import LoadedModel

DEFAULT_OPSET = 17
FORMATS = ("onnx", "torchscript")


@dataclass
class Artifact:
    format: str
    path: Path
    method: str  # trace | script | copy
    input_names: list[str]  # names the config must use, in model order
    output_names: list[str]
    runner: Runner
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _quiet_export(record: list[str]) -> Iterator[None]:
    """Silence PyTorch's deprecation chatter; keep TracerWarnings (data-dependent control flow hints)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            line = f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0]}"
            if line not in record:
                record.append(line)


@contextmanager
def _native_output_silenced() -> Iterator[None]:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _tuple_adapter(module: torch.nn.Module, input_names: list[str], keys: list[str]) -> torch.nn.Module:
    """Wrap a module whose forward returns a dict so it returns a tuple, keeping the argument names."""
    args = ", ".join(input_names)
    items = "".join(f"out[{k!r}], " for k in keys)
    namespace: dict[str, Any] = {}
    exec(f"def forward(self, {args}):\n    out = self.inner({args})\n    return ({items})\n", namespace)
    adapter_cls = type("TupleOutputs", (torch.nn.Module,), {"forward": namespace["forward"]})
    adapter = adapter_cls()
    adapter.inner = module
    return adapter.eval()


def _exportable(loaded: LoadedModel, script: bool) -> torch.nn.Module:
    assert loaded.module is not None
    if not loaded.output_keys:
        return loaded.module
    if script:
        raise SpecError("--script", True, "a forward() returning a Tensor or a tuple (it returns a dict); "
                        "TorchScript outputs for Triton are positional")
    if not all(n.isidentifier() for n in (i.name for i in loaded.inputs)):
        raise SpecError("inputs", [i.name for i in loaded.inputs], "Python identifiers")
    return _tuple_adapter(loaded.module, [i.name for i in loaded.inputs], loaded.output_keys)


def _example_args(loaded: LoadedModel) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(loaded.example_batch[i.name].copy()) for i in loaded.inputs)


def export_torchscript(loaded: LoadedModel, directory: Path, script: bool = False) -> Artifact:
    """Write ``directory/model.pt``. Config names: forward-argument names when the file keeps them."""
    path = directory / "model.pt"
    if loaded.kind == "onnx":
        raise SpecError("formats", "torchscript", "onnx only for an .onnx source (it cannot become TorchScript)")
    notes: list[str] = []
    method = "copy" if loaded.kind == "torchscript" else ("script" if script else "trace")
    try:
        if method == "copy":
            shutil.copyfile(loaded.description["path"], path)
        else:
            module = _exportable(loaded, script)
            with _quiet_export(notes):
                scripted = (torch.jit.script(module) if script
                            else torch.jit.trace(module, _example_args(loaded), check_trace=False))
                torch.jit.save(scripted, str(path))
        with _quiet_export([]):
            reloaded = torch.jit.load(str(path), map_location="cpu")
    except SpecError:
        raise
    except Exception as exc:
        hint = " (try --script)" if method == "trace" else " (try tracing: drop --script)" if script else ""
        raise ExportError(f"torchscript export ({method}) failed: {_first_line(exc)}{hint}") from exc
    model_names = [i.name for i in loaded.inputs]
    schema_names = [a.name for a in reloaded.forward.schema.arguments[1:]][: len(model_names)]
    config_inputs = model_names if schema_names == model_names else [f"INPUT__{i}" for i in range(len(model_names))]
    outputs = [f"OUTPUT__{i}" for i in range(len(loaded.outputs))]
    return Artifact("torchscript", path, method, config_inputs, outputs, TorchRunner(reloaded, model_names),
                    notes, {"torch": torch.__version__})


def export_onnx(loaded: LoadedModel, directory: Path, opset: int = DEFAULT_OPSET, script: bool = False) -> Artifact:
    """Write ``directory/model.onnx`` with a dynamic batch axis and the spec's variable dims."""
    import onnx

    path = directory / "model.onnx"
    input_names = [i.name for i in loaded.inputs]
    output_names = [o.name for o in loaded.outputs]
    notes: list[str] = []
    if loaded.kind == "onnx":
        assert loaded.onnx_path is not None
        shutil.copyfile(loaded.onnx_path, path)
        method = "copy"
    else:
        method = "script" if script else "trace"
        module = _exportable(loaded, script)
        if script:
            module = torch.jit.script(module)
        dynamic_axes = {}
        for t in loaded.inputs + loaded.outputs:
            axes = {0: "batch"} if loaded.batching else {}
            offset = 1 if loaded.batching else 0
            axes.update({i + offset: f"{t.name}_dim{i + offset}" for i, d in enumerate(t.dims) if d == -1})
            if axes:
                dynamic_axes[t.name] = axes
        try:
            with _quiet_export(notes), _native_output_silenced():
                torch.onnx.export(module, _example_args(loaded), str(path), dynamo=False, opset_version=opset,
                                  input_names=input_names, output_names=output_names,
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        except Exception as exc:
            hint = " (try --script)" if method == "trace" else ""
            raise ExportError(f"onnx export (opset {opset}) failed: {_first_line(exc)}{hint}") from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
        runner = OnnxRunner(path, input_names)
    except Exception as exc:
        raise ExportError(f"onnx model does not check/load: {_first_line(exc)}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}
    graph_inputs = [i.name for i in proto.graph.input if i.name not in initializers]
    for name in input_names:
        if name not in graph_inputs:
            raise ExportError(f"onnx export lost input '{name}': the exported graph does not depend on it "
                              "(does forward() leave torch, e.g. through .numpy() or .item()?)")
    graph_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    details = {"opset": graph_opset, "exporter": "torch.onnx.export (TorchScript-based)" if method != "copy" else None,
               "onnx": onnx.__version__}
    return Artifact("onnx", path, method, input_names, output_names, runner, notes, details)


def torchscript_equivalent(a: Path, b: Path) -> bool:
    """Same graph and weights, ignoring the ``___torch_mangle_N`` type renames of repeated in-process traces."""
    mangle = re.compile(r"___torch_mangle_\d+\.?")
    try:
        with _quiet_export([]):
            ma, mb = torch.jit.load(str(a), map_location="cpu"), torch.jit.load(str(b), map_location="cpu")
    except Exception:
        return False
    if mangle.sub("", str(ma.inlined_graph)) != mangle.sub("", str(mb.inlined_graph)):
        return False
    sa, sb = ma.state_dict(), mb.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def export(loaded: LoadedModel, fmt: str, directory: Path, *, opset: int = DEFAULT_OPSET,
           script: bool = False) -> Artifact:
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        return export_onnx(loaded, directory, opset, script)
    if fmt == "torchscript":
        return export_torchscript(loaded, directory, script)
    raise SpecError("formats", fmt, "one of " + ", ".join(FORMATS))
