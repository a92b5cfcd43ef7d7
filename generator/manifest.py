"""What a model version's manifest entry records: the file and its sha256, the format, the source, how it
was exported, the verification and optimization results, the request (in the spec's vocabulary, so
``build --from-manifest`` rebuilds it, for the same target release), the target release and what it can load,
the library versions, and the outputs' reference distribution (``output_distribution``: ``distribution.py``,
for the drift monitor). No timestamps or timings: the same inputs
give the same bytes."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from tritonize.core.distribution import KEY as DISTRIBUTION_KEY

from .exporters import Artifact
from .optimize import OptimizationReport
from .project import request_to_table
from .request import ModelRequest
from .source import LoadedModel
from .verify import VerificationReport
from .writer import sha256


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("tritonize", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def manifest_entry(req: ModelRequest, fmt: str, version: int, loaded: LoadedModel, artifact: Artifact,
                   report: VerificationReport, optimization: OptimizationReport | None,
                   distribution: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = {
        "artifact": {"file": f"{version}/{artifact.path.name}", "sha256": sha256(artifact.path),
                     "bytes": artifact.path.stat().st_size},
        "format": fmt,
        "source": loaded.description,
        "export": {"method": artifact.method, **artifact.details, "config_inputs": artifact.input_names,
                   "config_outputs": dict(zip(artifact.output_names, (o.name for o in loaded.outputs))),
                   "tracer_warnings": artifact.warnings},
        "verification": report.as_dict(),
        "optimization": optimization.recorded() if optimization else None,
        "request": {"name": req.name, **request_to_table(req), "triton_version": req.triton_version},
        "target": req.target.record(),
        "environment": environment(),
    }
    if distribution is not None:
        entry[DISTRIBUTION_KEY] = distribution
    return entry
