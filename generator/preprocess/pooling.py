"""Declared pooling (``Pooling``) added to a loaded model before export: token embeddings in, one sentence
embedding out, computed as sentence-transformers' ``Pooling`` module computes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from tritonize.core.datatypes import from_numpy

from ..adapters import with_forward
from ..errors import SpecError
from ..io_spec import TensorIO
from ..runners import TorchRunner
from ..source import LoadedModel
from . import Pooling


def _pool(self: Any, out: Any, mask: torch.Tensor) -> torch.Tensor:
    tokens = out[self.key] if isinstance(out, Mapping) else out[self.index] if isinstance(out, (tuple, list)) else out
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    if self.method == "cls":
        pooled = tokens[:, 0]
    elif self.method == "max":
        pooled = tokens.masked_fill(weights == 0, -1e9).max(1).values
    else:  # mean over the real tokens
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1) if self.normalize else pooled


def pooled(loaded: LoadedModel, pooling: Pooling) -> LoadedModel:
    """``loaded`` with its token embeddings pooled into one output, ``pooling.name``."""
    names = [t.name for t in loaded.inputs]
    outputs = [o.name for o in loaded.outputs]
    key = pooling.output or outputs[0]
    if loaded.module is None or loaded.kind == "onnx":
        raise SpecError("preprocess.pooling", loaded.kind, "a model callable or TorchScript file to pool")
    if pooling.mask not in names:
        raise SpecError("preprocess.pooling.mask", pooling.mask, "an input of the model: " + ", ".join(names))
    if key not in outputs:
        raise SpecError("preprocess.pooling.output", key, "an output of the model: " + ", ".join(outputs))
    if len(loaded.outputs[outputs.index(key)].dims) != 2:
        raise SpecError("preprocess.pooling.output", loaded.outputs[outputs.index(key)].describe(),
                        "token embeddings [tokens, hidden]")
    module = with_forward(f"{type(loaded.module).__name__}Pooled", loaded.module, names,
                          f"self.pool(self.inner({', '.join(names)}), {pooling.mask})", pool=_pool, key=key,
                          index=outputs.index(key), method=pooling.method, normalize=pooling.normalize)
    reference = TorchRunner(module, names)
    sample = reference(loaded.example_batch)[0]
    output = TensorIO(pooling.name, from_numpy(np.dtype(sample.dtype)), (int(sample.shape[-1]),))
    return dataclasses.replace(loaded, module=module, reference=reference, outputs=[output], output_keys=None)
