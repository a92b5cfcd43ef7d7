"""Stand-in for Triton's native pytorch backend: ``torch.jit.load``, tensors by DLPack, inputs and outputs
mapped to ``forward()`` exactly as the native backend maps them."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from . import StandIn, text

_INDEXED = re.compile(r"^(.+)__(\d+)$")


class PyTorchModel(StandIn):
    def load(self, path: Path) -> None:
        import torch

        params = self.parameters
        if "INTRA_OP_THREAD_COUNT" in params:
            torch.set_num_threads(int(params["INTRA_OP_THREAD_COUNT"]))
        if "INTER_OP_THREAD_COUNT" in params:
            with contextlib.suppress(RuntimeError):  # can be set once per process
                torch.set_num_interop_threads(int(params["INTER_OP_THREAD_COUNT"]))
        self.torch = torch
        self.device = f"cuda:{self.device_id}" if self.gpu and torch.cuda.is_available() else "cpu"
        self.module = torch.jit.load(str(path), map_location=self.device).eval()
        # libtorch.cc ModelState's parameters and defaults (r24.10); the JIT switches change nothing unless set.
        # The native backend sets them before each execution, as they are process-wide: a stand-in's stub runs
        # one instance, so once is the same. ENABLE_WEIGHT_SHARING has no meaning across stub processes.
        self.inference_mode = _flag(params, "INFERENCE_MODE", True)
        self.optimized = not _flag(params, "DISABLE_OPTIMIZED_EXECUTION", False)
        self.cache_cleaning = _flag(params, "ENABLE_CACHE_CLEANING", False) and self.device != "cpu"
        for key, switch in (("ENABLE_JIT_PROFILING", torch._C._jit_set_profiling_mode),
                            ("ENABLE_JIT_EXECUTOR", torch._C._jit_set_profiling_executor),
                            ("ENABLE_TENSOR_FUSER", torch._C._jit_set_texpr_fuser_enabled)):
            if key in params:
                switch(_flag(params, key, False))
        if "DISABLE_CUDNN" in params:
            torch.backends.cudnn.enabled = not _flag(params, "DISABLE_CUDNN", False)
        args = [a.name for a in self.module.forward.schema.arguments[1:]]
        self.input_order = self._positions(self.feeds, args)
        self.output_order = self._positions(self.fetches, [])

    @staticmethod
    def _positions(names: list[str], forward_args: list[str]) -> list[int]:
        """Position of each configured tensor, as the native backend resolves it: all forward() argument
        names, or all ``<name>__<index>``; anything else (mixed conventions, other output names) is config order."""
        if forward_args and all(n in forward_args for n in names):
            return [forward_args.index(n) for n in names]
        indexed = [_INDEXED.match(n) for n in names]
        if all(indexed):
            return [int(m.group(2)) for m in indexed if m]
        return list(range(len(names)))

    def input_tensor(self, tensor: Any, is_string: bool) -> Any:
        if is_string:  # List[str], as the native backend hands a string tensor to forward()
            return [text(b, tensor.name()) for b in tensor.as_numpy().reshape(-1)]
        return self.torch.from_dlpack(tensor.to_dlpack())

    def from_numpy(self, array: Any) -> Any:
        return self.torch.from_numpy(array)

    def concat(self, arrays: list[Any]) -> Any:
        if isinstance(arrays[0], list):
            return [s for strings in arrays for s in strings]
        return arrays[0] if len(arrays) == 1 else self.torch.cat(arrays)

    def response_value(self, name: str, value: Any, start: int, size: int, feeds: dict[str, Any],
                       scattered: dict[str, int]) -> Any:
        if isinstance(value, list):  # as libtorch.cc ReadOutputTensors: every response gets the list's first
            return value[:size] if self.batching else value  # elements, the first request's strings (r24.10)
        return super().response_value(name, value, start, size, feeds, scattered)

    def output_tensor(self, name: str, value: Any) -> Any:
        if isinstance(value, list):
            return pb_utils.Tensor(name, np.array([s.encode() for s in value], dtype=object))
        return pb_utils.Tensor.from_dlpack(name, self.torch.utils.dlpack.to_dlpack(value.contiguous()))

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        args: list[Any] = [None] * len(self.feeds)
        for name, position in zip(self.feeds, self.input_order):
            value = inputs[name]
            args[position] = value if isinstance(value, list) else value.to(self.device)
        grad = torch.inference_mode() if self.inference_mode else torch.no_grad()
        with grad, torch.jit.optimized_execution(self.optimized):
            result = self.module(*args)
        if self.cache_cleaning:
            torch.cuda.empty_cache()
        outputs = [result] if isinstance(result, torch.Tensor) else list(result)
        if len(outputs) < len(self.fetches):
            raise ValueError(f"the model returned {len(outputs)} outputs, the configuration has "
                             f"{len(self.fetches)}")
        return {name: outputs[position] for name, position in zip(self.fetches, self.output_order)}

    def execute_error(self, exc: Exception) -> str:
        return f"PyTorch execute failure: {exc}"  # libtorch.cc Execute's wording


def _flag(params: dict[str, str], key: str, default: bool) -> bool:
    """A boolean parameter as backend_common.cc ParseBoolValue reads it."""
    if key not in params:
        return default
    value = params[key].lower()
    if value not in ("true", "on", "1", "false", "off", "0"):
        raise ValueError(f"parameter {key}: got {params[key]!r}, expected true/false, on/off or 1/0")
    return value in ("true", "on", "1")
