"""``ModelRequest``: the one description of a model to build, in the one vocabulary that Python, TOML
(``tritonize.toml``), the CLI and the manifest share: a TOML key is the Python field's name.

Two structural forms only: ``inputs`` is a table keyed by input name, and per-format settings
(``format_options`` in Python) are tables named after their format (``[models.digits.onnx]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonize.core import formats, releases
from tritonize.core.formats import Tolerance

from .config_spec import (
    TENSOR_NAME_RE,
    DynamicBatching,
    InstanceGroup,
    Optimization,
    SequenceBatching,
    VersionPolicy,
    check_backend_options,
    check_name,
    check_scheduling,
)
from .errors import SpecError
from .io_spec import DeclaredTensor
from .preprocess import Preprocess
from .quantization import Quantization

TASKS = ("classification", "embedding", "regression")  # the accuracy gate's metric (generator/accuracy.py)

DEFAULT_OPSET = 17
# Triton's max_batch_size is an int32, but a build exports, verifies and writes warmup data at max_batch_size
# samples (max_batch_size = 1000000 meant a million-sample warmup): 65536 is far above any real batch a
# single request carries and still cheap to verify, so anything above it is taken for a typo.
MAX_BATCH_SIZE = 65536
EXPORTERS = ("torchscript", "dynamo")  # torch.onnx.export(dynamo=False) | torch.onnx.export(dynamo=True)
NAME_MAX = 255  # bytes in one file name (ext4, xfs, APFS): each <name>_<format> is a directory name


@dataclass(frozen=True)
class FormatOptions:
    """Settings that apply to one format of a model."""

    tolerance: Tolerance | None = None  # None: the format's default (the registry)
    parameters: Mapping[str, str] = field(default_factory=dict)
    optimization: Optimization = field(default_factory=Optimization)
    opset: int = DEFAULT_OPSET
    quantization: Quantization | None = None  # optimized formats (default: dynamic)
    accuracy_budget: float = 1.0  # points of accuracy (or of agreement without labels) an optimization may lose
    # embeddings (generator/accuracy.py): per-sample cosine with FP32 and nearest-neighbour agreement
    min_cosine_mean: float = 0.99
    min_cosine_min: float = 0.95
    min_neighbor_agreement: float | None = None  # reported always, a budget only when set (density-dependent)
    max_relative_error: float = 0.05  # regression: mean |INT8 - FP32| / mean |FP32 - mean FP32|
    exporter: str = "torchscript"  # ONNX formats: torch.onnx.export TorchScript-based, or "dynamo" (torch.export)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", dict(self.parameters))
        if isinstance(self.accuracy_budget, bool) or not 0 <= self.accuracy_budget <= 100:
            raise SpecError("accuracy_budget", self.accuracy_budget, "percentage points in [0, 100]")
        for key in ("min_cosine_mean", "min_cosine_min", "min_neighbor_agreement", "max_relative_error"):
            value = getattr(self, key)
            if value is None and key == "min_neighbor_agreement":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SpecError(key, value, "a number in [0, 1]")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not 7 <= self.opset <= 23:
            raise SpecError("opset", self.opset, "an ONNX opset between 7 and 23")
        if self.exporter not in EXPORTERS:
            raise SpecError("exporter", self.exporter, " or ".join(f"'{e}'" for e in EXPORTERS))


@dataclass(frozen=True)
class ModelRequest:
    name: str
    source: str
    formats: tuple[str, ...] = field(default_factory=formats.default_formats)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[DeclaredTensor, ...] = ()
    outputs: tuple[str, ...] | None = None  # output names (ONNX; TorchScript outputs are always OUTPUT__i)
    example_inputs: Path | None = None  # .npz of example inputs (for .pt sources)
    max_batch_size: int = 32
    dynamic_batching: DynamicBatching | None = None
    sequence_batching: SequenceBatching | None = None
    instance_group: tuple[InstanceGroup, ...] = ()
    version: int | None = None  # None: next free version
    version_policy: VersionPolicy | None = None
    warmup_batch_sizes: tuple[int, ...] | None = None  # None: 1 and max_batch_size
    response_cache: bool = False
    labels: Path | None = None
    default_model_filename: str | None = None
    script: bool = False
    format_options: Mapping[str, FormatOptions] = field(default_factory=dict)
    prune: float | None = None  # fraction of Linear/Conv weights zeroed (L1, unstructured) before export
    evaluation: str | None = None  # labeled set for the accuracy gate: .npz (inputs + "labels") or module:fn
    preprocess: Preprocess | None = None  # steps served in front of the model (an ensemble): generator/preprocess
    task: str | None = None  # what judges INT8/pruning: classification | embedding | regression (None: inferred)
    triton_version: str = releases.LOCAL  # the NGC release that serves it: what it can load (core.releases)

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        for i, output in enumerate(self.outputs or ()):
            check_name(output, f"outputs[{i}]", TENSOR_NAME_RE)
        object.__setattr__(self, "formats", tuple(self.formats))
        if not self.formats:
            raise SpecError("formats", [], "at least one of " + ", ".join(formats.FORMATS))
        if len(set(self.formats)) < len(self.formats):
            raise SpecError("formats", list(self.formats), "each format once")
        for fmt in self.formats + tuple(self.format_options):
            formats.get_format(fmt)
        longest = max(self.formats, key=lambda f: len(self.model_name(f).encode()))
        suffix = len(self.model_name(longest).encode()) - len(self.name.encode())
        if len(self.model_name(longest).encode()) > NAME_MAX:
            raise SpecError("name", self.name, f"a name of at most {NAME_MAX - suffix} bytes (the model directory "
                            f"<name>{self.model_name(longest)[len(self.name):]} must fit a {NAME_MAX}-byte file name)")
        for fmt, opts in self.format_options.items():
            try:
                check_backend_options(formats.FORMATS[fmt].backend.name, opts.parameters, opts.optimization)
                _check_optimized_options(fmt, opts)
            except SpecError as exc:
                raise exc.within(fmt) from None
        if self.prune is not None and (isinstance(self.prune, bool) or not 0 < self.prune < 1):
            raise SpecError("prune", self.prune, "a fraction in (0, 1) of Linear/Conv weights to zero")
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int) or self.max_batch_size < 0:
            raise SpecError("max_batch_size", self.max_batch_size, "an integer >= 0 (0: the model does not batch)")
        if self.max_batch_size > MAX_BATCH_SIZE:
            raise SpecError("max_batch_size", self.max_batch_size,
                            f"at most {MAX_BATCH_SIZE} (the build verifies and warms up at this many samples)")
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise SpecError("version", self.version, "an integer >= 1")
        for size in self.warmup_batch_sizes or ():
            if not isinstance(size, int) or not 1 <= size <= max(self.max_batch_size, 1):
                raise SpecError("warmup_batch_sizes", size, f"sizes in [1, {max(self.max_batch_size, 1)}]")
        check_scheduling(self.max_batch_size, self.dynamic_batching, self.sequence_batching)
        target = self.target
        for fmt in self.formats:
            if self.script and self.options(fmt).exporter == "dynamo":
                raise SpecError(f"{fmt}.exporter", "dynamo", "'torchscript' with script = true (torch.export "
                                "captures control flow itself; it does not take a scripted module)")
            opset = self.options(fmt).opset
            if "opset" in formats.FORMATS[fmt].options and target.onnx_opset_problem(opset):
                raise SpecError(f"{fmt}.opset", opset, f"at most {target.onnx_opset}, the highest opset "
                                f"{target.ort_name} reads (triton_version)")
        if self.task is not None and self.task not in TASKS:
            raise SpecError("task", self.task, " or ".join(TASKS) + " (or unset: inferred from the outputs)")
        if self.labels is not None and not Path(self.labels).is_file():
            raise SpecError("labels", str(self.labels), "an existing text file, one label per line")

    @property
    def target(self) -> releases.Release:
        return releases.get(self.triton_version)

    def model_name(self, fmt: str) -> str:
        return f"{self.name}_{fmt.replace('-', '_')}"

    def options(self, fmt: str) -> FormatOptions:
        return self.format_options.get(fmt, FormatOptions())

    def tolerance(self, fmt: str) -> Tolerance:
        return self.options(fmt).tolerance or formats.FORMATS[fmt].tolerance


def _check_optimized_options(fmt: str, opts: FormatOptions) -> None:
    """Quantization settings only on formats that take them; TensorRT INT8 only where TensorRT can run it."""
    if opts.exporter != "torchscript" and "exporter" not in formats.FORMATS[fmt].options:
        takes = [f.name for f in formats.FORMATS.values() if "exporter" in f.options]
        raise SpecError("exporter", opts.exporter, "the default 'torchscript' (only " + " and ".join(takes)
                        + " choose an ONNX exporter)")
    if opts.quantization is not None and "quantization" not in formats.FORMATS[fmt].options:
        takes = [f.name for f in formats.FORMATS.values() if "quantization" in f.options]
        raise SpecError("quantization", "set", "quantization settings only on " + " or ".join(takes))
    trt = opts.optimization.tensorrt
    if trt is None or trt.precision_mode != "INT8":
        return
    static = fmt == "onnx-int8" and opts.quantization is not None and opts.quantization.method == "static"
    if static and trt.int8_calibration_table_name:
        raise SpecError("optimization.tensorrt.int8_calibration_table_name", trt.int8_calibration_table_name,
                        "no calibration table for a Q/DQ model (TensorRT refuses both together)")
    if not static and not trt.int8_calibration_table_name:
        raise SpecError("optimization.tensorrt.precision_mode", "INT8",
                        "INT8 only for a Q/DQ model (onnx-int8 with quantization.method = static) or with "
                        "int8_calibration_table_name")
