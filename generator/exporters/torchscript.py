"""``torchscript``: trace (default) or script the module; a TorchScript source is copied."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from tritonize.core.formats import PYTORCH
from tritonize.core.loader import summary

from ..errors import ExportError, SpecError
from ..runners import TorchRunner
from ..source import LoadedModel
from . import Artifact, ExportJob
from ._torch import example_args, exportable, quiet_export


def export_torchscript(job: ExportJob) -> Artifact:
    return write_torchscript(job.loaded, job.directory, job.request.script)


def write_torchscript(loaded: LoadedModel, directory: Path, script: bool) -> Artifact:
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
            module = exportable(loaded, script)
            with quiet_export(notes):
                scripted = (torch.jit.script(module) if script
                            else torch.jit.trace(module, example_args(loaded), check_trace=False))
                torch.jit.save(scripted, str(path))
        with quiet_export([]):
            reloaded = torch.jit.load(str(path), map_location="cpu")
    except SpecError:
        raise
    except Exception as exc:
        hint = " (try --script)" if method == "trace" else " (try tracing: drop --script)" if script else ""
        raise ExportError(f"torchscript export ({method}) failed: {summary(exc)}{hint}") from exc
    model_names = [i.name for i in loaded.inputs]
    schema_names = [a.name for a in reloaded.forward.schema.arguments[1:]][: len(model_names)]
    config_inputs = model_names if schema_names == model_names else [f"INPUT__{i}" for i in range(len(model_names))]
    assert PYTORCH.output_names is not None
    outputs = [PYTORCH.output_names.format(i=i) for i in range(len(loaded.outputs))]
    return Artifact("torchscript", path, method, config_inputs, outputs, TorchRunner(reloaded, model_names),
                    notes, {"torch": torch.__version__})


def equivalent(a: Path, b: Path) -> bool:
    """Same graph and weights, ignoring the ``___torch_mangle_N`` type renames of repeated in-process traces."""
    mangle = re.compile(r"___torch_mangle_\d+\.?")
    try:
        with quiet_export([]):
            ma, mb = torch.jit.load(str(a), map_location="cpu"), torch.jit.load(str(b), map_location="cpu")
    except Exception:
        return False
    if mangle.sub("", str(ma.inlined_graph)) != mangle.sub("", str(mb.inlined_graph)):
        return False
    sa, sb = ma.state_dict(), mb.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
