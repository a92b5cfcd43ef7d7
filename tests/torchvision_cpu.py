"""Make PyPI's torchvision importable beside the CPU torch wheel, for tests only.

PyPI's torchvision for x86_64 Linux is a CUDA build: beside the CPU torch this machine installs its C++ ops
(``_C.so``) cannot load (``libc10_cuda.so`` is missing), and ``import torchvision`` then fails on its fake
registration of ``torchvision::nms`` ('operator torchvision::nms does not exist'). transformers imports
torchvision whenever it is installed, so it fails too. The classifiers, transforms and transformers the tests
use need none of those ops: declaring the two schemas that torchvision registers unconditionally lets the
package import. Where ``_C.so`` loads (a matching CPU or CUDA install) nothing is declared.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path


def apply() -> None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    import torch

    try:
        torch.ops.load_library(str(Path(spec.origin).parent / "_C.so"))
    except OSError:
        for op in ("nms", "qnms"):
            with contextlib.suppress(RuntimeError):  # already declared in this process
                torch.library.define(f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
