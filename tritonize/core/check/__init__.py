"""``tritonize check REPO``: a static linter for any Triton model repository.

It reads each ``<model>/config.pbtxt`` (and the ``configs/*.pbtxt`` variants) as Triton does and reports,
without a server, what Triton would refuse at load time or silently work around. The rules follow Triton's
sources — core ``model_config_utils.cc`` (ValidateModelConfig, ValidateIOShape, NormalizeInstanceGroup),
``model_lifecycle.cc`` (VersionsToLoad), ``dynamic_batch_scheduler.cc``, onnxruntime_backend
``onnxruntime.cc`` and pytorch_backend ``libtorch.cc`` — and the issues in ``reference/triton-facts.md``.
``CODES`` documents every finding code.

Modules: ``codes`` (findings), ``model`` (reading a model directory), ``backends`` (backend / platform
resolution), ``rules`` (generic config rules), ``onnx`` and ``torchscript`` (model file validators, named by
the format registry), ``lint`` (the driver). ``onnx`` and ``torch`` are imported only when a model file is
read, so importing this package stays cheap.
"""

from .codes import BACKEND_LOAD_CODES, CODES, Code, Finding
from .lint import backend_load_errors, check_repository

__all__ = ["BACKEND_LOAD_CODES", "CODES", "Code", "Finding", "backend_load_errors", "check_repository"]
