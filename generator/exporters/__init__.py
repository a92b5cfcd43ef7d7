"""One exporter per format (named in the format registry, ``tritonize.core.formats``), one call to run it.

An exporter takes an ``ExportJob`` and writes the model file into ``job.directory``, returning the
``Artifact``: the file, the tensor names the config must use, a runner for verification, what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritonize.core.formats import Format, get_format
from tritonize.core.loader import load_callable

from ..runners import Runner

if TYPE_CHECKING:
    from ..request import ModelRequest
    from ..source import LoadedModel


@dataclass
class Artifact:
    format: str
    path: Path
    method: str  # trace | script | copy | int8 ...
    input_names: list[str]  # names the config must use, in model order
    output_names: list[str]
    runner: Runner
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportJob:
    """What an exporter gets: the loaded model, the request, the format and where to write."""

    loaded: LoadedModel
    request: ModelRequest
    format: Format
    directory: Path
    fp32: Callable[[str], Artifact]  # an FP32 export of a base format, made once per build (scratch space)

    @property
    def model_name(self) -> str:
        return self.request.model_name(self.format.name)


def export(job: ExportJob) -> Artifact:
    job.directory.mkdir(parents=True, exist_ok=True)
    exporter: Callable[[ExportJob], Artifact] = load_callable(job.format.exporter, f"{job.format.name} exporter")
    return exporter(job)


def equivalent(fmt: str) -> Callable[[Path, Path], bool] | None:
    """How two files of ``fmt`` are compared for "unchanged" when equal bytes are not the test."""
    ref = get_format(fmt).equivalent
    return load_callable(ref, f"{fmt} equivalence") if ref else None
