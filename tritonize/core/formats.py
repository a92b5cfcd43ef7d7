"""The format registry: everything tritonize knows about a format and its Triton backend, in one record each.

A *format* is what the generator writes (``onnx``, ``torchscript``, their INT8 variants); a *backend* is what
Triton runs it with (``backend: "onnxruntime"``). Everything else reads these records: the spec's choices and
per-format keys, the config's platform and model file, default tolerances, known backend parameters, which
exporter writes the file, which stand-in runs it locally, and what ``check`` validates against it. Adding a
format is one ``register()`` plus its exporter (and, for a new backend, its stand-in runner and validator).

Exporters, runners and validators are named as ``module:attribute`` and imported only when used, so the
registry itself needs no torch, onnx or generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import SpecError

# A backend parameter's rule: the allowed string values, ``int`` (a non-negative integer) or None (any string).
ParameterRule = tuple[str, ...] | type | None
_BOOL = ("true", "false")
_BIT = ("0", "1")


@dataclass(frozen=True)
class Tolerance:
    """Parity thresholds: elementwise ``|got - ref| <= atol + rtol·|ref|``, cosine and argmax agreement."""

    atol: float
    rtol: float
    min_cosine: float
    min_argmax_agreement: float

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            if getattr(self, name) < 0:
                raise SpecError(f"tolerance.{name}", getattr(self, name), "a number >= 0")
        for name in ("min_cosine", "min_argmax_agreement"):
            if not 0 <= getattr(self, name) <= 1:
                raise SpecError(f"tolerance.{name}", getattr(self, name), "a number in [0, 1]")


@dataclass(frozen=True)
class Backend:
    name: str  # `backend:` in config.pbtxt
    platform: str  # what Triton reports as the platform
    default_filename: str  # the model file in a version directory
    parameters: Mapping[str, ParameterRule]  # model-level `parameters` the backend reads
    standin: str  # module:class of the local stand-in (runs in the python backend's stub process)
    validator: str | None = None  # module:function checking a config against the model file (tritonize check)
    reader: str | None = None  # the package the validator needs to open the file
    accelerators: bool = False  # TensorRT / OpenVINO execution accelerators and graph level apply
    output_names: str | None = None  # outputs must be named so, e.g. "OUTPUT__{i}" (the backend maps by position)


@dataclass(frozen=True)
class Format:
    name: str
    backend: Backend
    exporter: str  # module:function(ExportJob) -> Artifact
    tolerance: Tolerance  # default parity tolerance against the eager model
    base: str | None = None  # the FP32 format an optimized variant is made from and judged against
    options: tuple[str, ...] = ()  # per-format spec keys beyond parameters, tolerance, optimization, accuracy_budget
    cpu_only: bool = False  # kernels exist on CPU only: instance groups become KIND_CPU
    equivalent: str | None = None  # module:function(a, b) -> bool when equal bytes are not the test of "unchanged"
    default: bool = False  # built when a request names no formats

    @property
    def optimized(self) -> bool:
        return self.base is not None

    @property
    def fp32(self) -> str:
        """The FP32 format this one is (or is made from)."""
        return self.base or self.name


# tritonize's own model-level config parameters: the model's own input/output names, comma-separated in config
# order, where the config must use others (the pytorch backend's OUTPUT__<i>, INPUT__<i>). Backends read the
# parameters they know by key and ignore these (libtorch.cc ModelState::ParseParameters, r24.10); the typed
# client reads them (tritonize.client.model_info), ``check`` counts them (tensor-names-parameter).
TENSOR_NAMES = {"input": "tritonize.input_names", "output": "tritonize.output_names"}

BACKENDS: dict[str, Backend] = {}
FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    known = BACKENDS.setdefault(fmt.backend.name, fmt.backend)
    if known is not fmt.backend:
        raise ValueError(f"backend {fmt.backend.name!r} is registered with another record")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove a format (and its backend when no other format uses it): for tests that register one."""
    fmt = FORMATS.pop(name)
    if all(f.backend is not fmt.backend for f in FORMATS.values()):
        BACKENDS.pop(fmt.backend.name, None)


def get_format(name: str, field_name: str = "formats") -> Format:
    if name not in FORMATS:
        raise SpecError(field_name, name, "one of " + ", ".join(FORMATS))
    return FORMATS[name]


def get_backend(name: str, field_name: str = "backend") -> Backend:
    if name not in BACKENDS:
        raise SpecError(field_name, name, "one of " + ", ".join(BACKENDS))
    return BACKENDS[name]


def default_formats() -> tuple[str, ...]:
    return tuple(f.name for f in FORMATS.values() if f.default)


def by_platform(platform: str) -> Backend | None:
    return next((b for b in BACKENDS.values() if b.platform == platform), None)


ONNXRUNTIME = Backend(
    "onnxruntime", "onnxruntime_onnx", "model.onnx",
    parameters={
        "intra_op_thread_count": int, "inter_op_thread_count": int, "execution_mode": _BIT,
        "enable_mem_arena": _BIT, "enable_mem_pattern": _BIT, "memory.enable_memory_arena_shrinkage": None,
        "session.use_device_allocator_for_initializers": _BIT, "cudnn_conv_algo_search": ("0", "1", "2"),
        "gpu_mem_limit": int, "arena_extend_strategy": _BIT, "do_copy_in_default_stream": _BIT,
    },
    standin="tritonize.deploy.standins.onnxruntime:OnnxRuntimeModel",
    validator="tritonize.core.check.onnx:check_onnx", reader="onnx", accelerators=True,
)
PYTORCH = Backend(
    "pytorch", "pytorch_libtorch", "model.pt",
    parameters={
        "DISABLE_OPTIMIZED_EXECUTION": _BOOL, "INFERENCE_MODE": _BOOL, "DISABLE_CUDNN": _BOOL,
        "ENABLE_WEIGHT_SHARING": _BOOL, "ENABLE_CACHE_CLEANING": _BOOL, "ENABLE_JIT_EXECUTOR": _BOOL,
        "ENABLE_JIT_PROFILING": _BOOL, "INTER_OP_THREAD_COUNT": int, "INTRA_OP_THREAD_COUNT": int,
        "NUM_THREADS": int, "NUM_INTEROP_THREADS": int,
    },
    standin="tritonize.deploy.standins.pytorch:PyTorchModel",
    validator="tritonize.core.check.torchscript:check_torchscript", reader="torch",
    output_names="OUTPUT__{i}",
)

# onnxruntime fuses and reorders float ops; TorchScript runs the same kernels as eager.
_ONNX_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.9999, min_argmax_agreement=0.99)
_TORCHSCRIPT_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4, min_cosine=0.99999, min_argmax_agreement=1.0)
_TORCHSCRIPT_EQUAL = "tritonize.generator.exporters.torchscript:equivalent"

register(Format("onnx", ONNXRUNTIME, "tritonize.generator.exporters.onnx:export_onnx", _ONNX_TOLERANCE,
                options=("opset", "exporter"), default=True))
register(Format("torchscript", PYTORCH, "tritonize.generator.exporters.torchscript:export_torchscript",
                _TORCHSCRIPT_TOLERANCE, equivalent=_TORCHSCRIPT_EQUAL, default=True))
register(Format("onnx-int8", ONNXRUNTIME, "tritonize.generator.exporters.onnx_int8:export_onnx_int8",
                _ONNX_TOLERANCE, base="onnx", options=("opset", "exporter", "quantization")))
register(Format("torchscript-int8", PYTORCH,
                "tritonize.generator.exporters.torchscript_int8:export_torchscript_int8", _TORCHSCRIPT_TOLERANCE,
                base="torchscript", options=("quantization",), cpu_only=True, equivalent=_TORCHSCRIPT_EQUAL))
