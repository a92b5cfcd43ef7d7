"""Run a model (eager, TorchScript file, ONNX file) on a dict of numpy inputs; get a list of numpy outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch


class Runner(Protocol):
    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


def flatten_outputs(result: Any, keys: Sequence[str] | None = None) -> list[np.ndarray]:
    """A tensor, a tuple/list of tensors, or a dict of tensors (in ``keys`` order) as numpy arrays."""
    if isinstance(result, torch.Tensor):
        items = [result]
    elif isinstance(result, (tuple, list)):
        items = list(result)
    elif isinstance(result, Mapping):
        items = [result[k] for k in (keys or list(result))]
    else:
        raise TypeError(f"model returned {type(result).__name__}; expected a Tensor, a tuple of Tensors or a dict")
    for item in items:
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"model returned a {type(item).__name__} among its outputs; expected Tensors only")
    return [t.detach().cpu().contiguous().numpy() for t in items]


class TorchRunner:
    """An ``nn.Module`` or ``ScriptModule`` called with positional tensors in ``input_names`` order."""

    def __init__(self, module: torch.nn.Module, input_names: Sequence[str], output_keys: Sequence[str] | None = None):
        self.module = module
        self.input_names = list(input_names)
        self.output_keys = output_keys

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        with torch.inference_mode():
            return flatten_outputs(self.module(*args), self.output_keys)


def torchscript_runner(path: Path, input_names: Sequence[str]) -> TorchRunner:
    return TorchRunner(torch.jit.load(str(path), map_location="cpu"), input_names)


class OnnxRunner:
    def __init__(self, path: Path, input_names: Sequence[str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names) if input_names else [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, {n: inputs[n] for n in self.input_names}))
