"""tritonize's stand-in for Triton's native onnxruntime backend: a Python-based backend (tritonize/deploy/standin.py).

The launcher passes its Python environment in TRITONIZE_SITE_DIRS: the stub's interpreter ignores
PYTHONPATH, and those directories must come before any other site-packages on the stub's path.
"""

import os
import site
import sys

_before = list(sys.path)
for _entry in os.environ.get("TRITONIZE_SITE_DIRS", "").split(os.pathsep):
    if _entry:
        site.addsitedir(_entry)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

from tritonize.deploy.standin import OnnxRuntimeModel as TritonPythonModel  # noqa: E402

__all__ = ["TritonPythonModel"]
