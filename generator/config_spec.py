"""Typed model configuration: the part of Triton's ``model_config.proto`` users need.

Each dataclass validates itself in ``__post_init__`` (raising ``SpecError`` naming the field) and builds the
equivalent protobuf with ``to_proto()``. The Jinja2 templates render the same spec to text; ``render.py``
parses that text back and compares it with ``to_proto()``, so a template bug fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tritonclient.grpc import model_config_pb2 as pb

from tritonize.core import formats
from tritonize.core.datatypes import BY_CONFIG

from .errors import SpecError

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
TENSOR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]*")


def check_name(value: str, field_name: str, pattern: re.Pattern[str] = NAME_RE) -> str:
    """Names become directory and file names: no '/', '..', quotes, spaces or newlines (the whole value matches)."""
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise SpecError(field_name, value, f"a name matching ^{pattern.pattern}$ without '..'")
    return value


def _positive(value: int, field_name: str, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(field_name, value, f"an integer >= {low}")
    return value


def _choice(value: str, field_name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(field_name, value, "one of " + ", ".join(choices))
    return value


@dataclass(frozen=True)
class TensorConfig:
    """One ``input`` or ``output`` entry. ``dims`` exclude the batch dimension when max_batch_size > 0."""

    name: str
    data_type: str  # "TYPE_FP32"
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False  # inputs only
    label_filename: str | None = None  # outputs only

    def __post_init__(self) -> None:
        check_name(self.name, "name", TENSOR_NAME_RE)
        if self.data_type not in BY_CONFIG:
            raise SpecError(f"{self.name}.data_type", self.data_type, "one of " + ", ".join(BY_CONFIG))
        object.__setattr__(self, "dims", tuple(self.dims))
        if not self.dims:
            raise SpecError(f"{self.name}.dims", [], "at least one dim (use dims [1] with reshape [] for scalars)")
        for d in self.dims:
            if isinstance(d, bool) or not isinstance(d, int) or d == 0 or d < -1:
                raise SpecError(f"{self.name}.dims", list(self.dims), "positive sizes or -1 for variable dims")
        if self.reshape is not None:
            object.__setattr__(self, "reshape", tuple(self.reshape))
        if self.label_filename is not None:
            check_name(self.label_filename, f"{self.name}.label_filename")

    def to_proto(self, message: Any) -> None:
        message.name = self.name
        message.data_type = pb.DataType.Value(self.data_type)
        message.dims.extend(self.dims)
        if self.reshape is not None:
            message.reshape.shape.extend(self.reshape)
            message.reshape.SetInParent()
        if self.optional:
            message.optional = True
        if self.label_filename:
            message.label_filename = self.label_filename


@dataclass(frozen=True)
class QueuePolicy:
    timeout_action: str = "REJECT"
    default_timeout_microseconds: int = 0
    allow_timeout_override: bool = False
    max_queue_size: int = 0

    def __post_init__(self) -> None:
        _choice(self.timeout_action, "timeout_action", ("REJECT", "DELAY"))
        _positive(self.default_timeout_microseconds, "default_timeout_microseconds", allow_zero=True)
        _positive(self.max_queue_size, "max_queue_size", allow_zero=True)

    def to_proto(self, message: Any) -> None:
        message.timeout_action = pb.ModelQueuePolicy.TimeoutAction.Value(self.timeout_action)
        message.default_timeout_microseconds = self.default_timeout_microseconds
        message.allow_timeout_override = self.allow_timeout_override
        message.max_queue_size = self.max_queue_size
        message.SetInParent()


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0
    preserve_ordering: bool = False
    priority_levels: int = 0
    default_priority_level: int = 0
    default_queue_policy: QueuePolicy | None = None
    priority_queue_policy: Mapping[int, QueuePolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "preferred_batch_size", tuple(self.preferred_batch_size))
        for size in self.preferred_batch_size:
            _positive(size, "dynamic_batching.preferred_batch_size")
        _positive(self.max_queue_delay_microseconds, "dynamic_batching.max_queue_delay_microseconds", True)
        _positive(self.priority_levels, "dynamic_batching.priority_levels", allow_zero=True)
        if self.default_priority_level and not 1 <= self.default_priority_level <= self.priority_levels:
            raise SpecError("dynamic_batching.default_priority_level", self.default_priority_level,
                            f"a level in [1, priority_levels={self.priority_levels}]")
        if self.priority_levels and not self.default_priority_level:
            raise SpecError("dynamic_batching.default_priority_level", 0,
                            f"a level in [1, {self.priority_levels}] when priority_levels is set")
        for level in self.priority_queue_policy:
            if not 1 <= level <= self.priority_levels:
                raise SpecError("dynamic_batching.priority_queue_policy", level,
                                f"a priority level in [1, priority_levels={self.priority_levels}]")
        object.__setattr__(self, "priority_queue_policy", dict(sorted(self.priority_queue_policy.items())))

    def to_proto(self, message: Any) -> None:
        message.SetInParent()
        message.preferred_batch_size.extend(self.preferred_batch_size)
        message.max_queue_delay_microseconds = self.max_queue_delay_microseconds
        message.preserve_ordering = self.preserve_ordering
        message.priority_levels = self.priority_levels
        message.default_priority_level = self.default_priority_level
        if self.default_queue_policy is not None:
            self.default_queue_policy.to_proto(message.default_queue_policy)
        for level, policy in self.priority_queue_policy.items():
            policy.to_proto(message.priority_queue_policy[level])


@dataclass(frozen=True)
class SequenceBatching:
    """Minimal sequence batcher (stateful models); exclusive with dynamic batching."""

    max_sequence_idle_microseconds: int = 0
    strategy: str = "direct"
    max_queue_delay_microseconds: int = 0

    def __post_init__(self) -> None:
        _choice(self.strategy, "sequence_batching.strategy", ("direct", "oldest"))
        _positive(self.max_sequence_idle_microseconds, "sequence_batching.max_sequence_idle_microseconds", True)
        _positive(self.max_queue_delay_microseconds, "sequence_batching.max_queue_delay_microseconds", True)

    def to_proto(self, message: Any) -> None:
        message.SetInParent()
        message.max_sequence_idle_microseconds = self.max_sequence_idle_microseconds
        strategy = getattr(message, self.strategy)
        strategy.SetInParent()
        strategy.max_queue_delay_microseconds = self.max_queue_delay_microseconds


@dataclass(frozen=True)
class InstanceGroup:
    kind: str = "KIND_GPU"
    count: int = 1
    gpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        kind = self.kind.upper()
        kind = kind if kind.startswith("KIND_") else "KIND_" + kind
        object.__setattr__(self, "kind", _choice(kind, "instance_group.kind",
                                                 ("KIND_GPU", "KIND_CPU", "KIND_AUTO", "KIND_MODEL")))
        _positive(self.count, "instance_group.count")
        object.__setattr__(self, "gpus", tuple(self.gpus))
        for gpu in self.gpus:
            _positive(gpu, "instance_group.gpus", allow_zero=True)
        if self.gpus and self.kind != "KIND_GPU":
            raise SpecError("instance_group.gpus", list(self.gpus), "no gpus unless kind is KIND_GPU")

    def to_proto(self, message: Any) -> None:
        message.kind = pb.ModelInstanceGroup.Kind.Value(self.kind)
        message.count = self.count
        message.gpus.extend(self.gpus)


@dataclass(frozen=True)
class VersionPolicy:
    """``latest`` (num_versions), ``all``, or ``specific`` (versions)."""

    policy: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _choice(self.policy, "version_policy", ("latest", "all", "specific"))
        _positive(self.num_versions, "version_policy.latest.num_versions")
        object.__setattr__(self, "versions", tuple(sorted(self.versions)))
        if self.policy == "specific" and not self.versions:
            raise SpecError("version_policy.specific.versions", [], "at least one version number")
        for v in self.versions:
            _positive(v, "version_policy.specific.versions")

    @classmethod
    def from_toml(cls, value: Any, where: str) -> VersionPolicy:
        """``{ latest = N }``, ``{ all = true }`` or ``{ specific = [versions] }`` (Triton's oneof)."""
        if not isinstance(value, Mapping) or len(value) != 1:
            raise SpecError(where, value, "{ latest = N } | { all = true } | { specific = [versions] }")
        (kind, arg), = value.items()
        if kind == "latest":
            if isinstance(arg, bool) or not isinstance(arg, int):
                raise SpecError(f"{where}.latest", arg, "an integer")
            return cls("latest", num_versions=arg)
        if kind == "all":
            return cls("all")
        if kind == "specific":
            if not isinstance(arg, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in arg):
                raise SpecError(f"{where}.specific", arg, "a list of integers")
            return cls("specific", versions=tuple(arg))
        raise SpecError(f"{where}.{kind}", arg, "one of the keys latest (= N), all (= true), specific (= [versions])")

    def to_toml(self) -> dict[str, Any]:
        return {"latest": self.num_versions} if self.policy == "latest" else \
            {"all": True} if self.policy == "all" else {"specific": list(self.versions)}

    def to_proto(self, message: Any) -> None:
        if self.policy == "latest":
            message.latest.num_versions = self.num_versions
        elif self.policy == "all":
            message.all.SetInParent()
        else:
            message.specific.versions.extend(self.versions)


@dataclass(frozen=True)
class WarmupInput:
    name: str
    data_type: str
    dims: tuple[int, ...]
    input_data_file: str  # file under <model>/warmup/

    def to_proto(self, message: Any) -> None:
        message.data_type = pb.DataType.Value(self.data_type)
        message.dims.extend(self.dims)
        message.input_data_file = self.input_data_file


@dataclass(frozen=True)
class Warmup:
    name: str
    batch_size: int
    inputs: tuple[WarmupInput, ...]
    count: int = 1

    def __post_init__(self) -> None:
        _positive(self.batch_size, f"model_warmup.{self.name}.batch_size")
        _positive(self.count, f"model_warmup.{self.name}.count")

    def to_proto(self, message: Any) -> None:
        message.name = self.name
        message.batch_size = self.batch_size
        message.count = self.count
        for inp in self.inputs:
            inp.to_proto(message.inputs[inp.name])


@dataclass(frozen=True)
class TensorRTAccelerator:
    """ONNX Runtime's TensorRT execution provider inside the onnxruntime backend (GPU)."""

    precision_mode: str = "FP16"
    max_workspace_size_bytes: int | None = None
    trt_engine_cache_enable: bool = False
    trt_engine_cache_path: str | None = None
    int8_calibration_table_name: str | None = None
    int8_use_native_calibration_table: bool = False

    def __post_init__(self) -> None:
        _choice(self.precision_mode, "optimization.tensorrt.precision_mode", ("FP32", "FP16", "BF16", "INT8"))
        if self.max_workspace_size_bytes is not None:
            _positive(self.max_workspace_size_bytes, "optimization.tensorrt.max_workspace_size_bytes")
        if self.trt_engine_cache_path and not self.trt_engine_cache_enable:
            raise SpecError("optimization.tensorrt.trt_engine_cache_path", self.trt_engine_cache_path,
                            "no cache path unless trt_engine_cache_enable = true")
        if self.int8_calibration_table_name and self.precision_mode != "INT8":
            raise SpecError("optimization.tensorrt.int8_calibration_table_name",
                            self.int8_calibration_table_name, "a calibration table only with precision_mode INT8")

    def parameters(self) -> dict[str, str]:
        params = {"precision_mode": self.precision_mode}
        if self.max_workspace_size_bytes is not None:
            params["max_workspace_size_bytes"] = str(self.max_workspace_size_bytes)
        if self.trt_engine_cache_enable:
            params["trt_engine_cache_enable"] = "true"
        if self.trt_engine_cache_path:
            params["trt_engine_cache_path"] = self.trt_engine_cache_path
        if self.int8_calibration_table_name:
            params["int8_calibration_table_name"] = self.int8_calibration_table_name
        if self.int8_use_native_calibration_table:
            params["int8_use_native_calibration_table"] = "true"
        return params


@dataclass(frozen=True)
class Optimization:
    tensorrt: TensorRTAccelerator | None = None
    openvino: bool = False
    cuda_graphs: bool = False
    graph_level: int | None = None  # ORT graph optimization level: -1 (basic), 1 (extended/all)

    @property
    def empty(self) -> bool:
        return self == Optimization()

    def to_proto(self, message: Any) -> None:
        if self.graph_level is not None:
            message.graph.level = self.graph_level
        if self.cuda_graphs:
            message.cuda.graphs = True
        accelerators = message.execution_accelerators
        if self.tensorrt is not None:
            trt = accelerators.gpu_execution_accelerator.add(name="tensorrt")
            trt.parameters.update(self.tensorrt.parameters())
        if self.openvino:
            accelerators.cpu_execution_accelerator.add(name="openvino")


def check_scheduling(max_batch_size: int, dynamic: DynamicBatching | None, sequence: SequenceBatching | None) -> None:
    """Schedulers are a oneof; the dynamic batcher needs a batch dimension and sizes within max_batch_size."""
    if dynamic and sequence:
        raise SpecError("dynamic_batching", "set together with sequence_batching",
                        "at most one scheduler (they are a oneof in model_config.proto)")
    if dynamic and max_batch_size == 0:
        raise SpecError("dynamic_batching", "enabled with max_batch_size 0",
                        "max_batch_size >= 1 (the batcher needs a batch dimension)")
    for size in dynamic.preferred_batch_size if dynamic else ():
        if size > max_batch_size:
            raise SpecError("dynamic_batching.preferred_batch_size", size,
                            f"sizes <= max_batch_size ({max_batch_size})")


def check_backend_options(backend: str, parameters: Mapping[str, str], optimization: Optimization) -> None:
    """Backend parameters must be ones the backend knows, with valid values; accelerators must fit it."""
    spec = formats.get_backend(backend)
    known = spec.parameters
    for key, value in parameters.items():
        if key not in known:
            raise SpecError(f"parameters.{key}", value,
                            f"a parameter of the {backend} backend: " + ", ".join(sorted(known)))
        rule = known[key]
        if not isinstance(value, str):
            raise SpecError(f"parameters.{key}", value, "a string value")
        if rule is int and not value.isdigit():
            raise SpecError(f"parameters.{key}", value, "a non-negative integer written as a string")
        if isinstance(rule, tuple) and value not in rule:
            raise SpecError(f"parameters.{key}", value, "one of " + ", ".join(rule))
    if optimization.cuda_graphs:
        raise SpecError("optimization.cuda_graphs", True,
                        f"false for backend '{backend}' (CUDA graphs are only recognized by tensorrt)")
    if not spec.accelerators and (optimization.tensorrt or optimization.openvino or
                                  optimization.graph_level is not None):
        takes = [b.name for b in formats.BACKENDS.values() if b.accelerators]
        raise SpecError("optimization", "tensorrt/openvino/graph_level",
                        f"execution accelerators only for backend {' or '.join(takes)}, not '{backend}'")


@dataclass(frozen=True)
class ModelConfigSpec:
    name: str
    backend: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    dynamic_batching: DynamicBatching | None = None
    sequence_batching: SequenceBatching | None = None
    instance_group: tuple[InstanceGroup, ...] = ()
    version_policy: VersionPolicy | None = None
    warmup: tuple[Warmup, ...] = ()
    response_cache: bool = False
    optimization: Optimization = field(default_factory=Optimization)
    parameters: Mapping[str, str] = field(default_factory=dict)
    default_model_filename: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        formats.get_backend(self.backend)
        _positive(self.max_batch_size, "max_batch_size", allow_zero=True)
        for attr in ("inputs", "outputs", "instance_group", "warmup"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if not self.inputs or not self.outputs:
            raise SpecError("inputs" if not self.inputs else "outputs", [], "at least one tensor")
        names = [t.name for t in self.inputs + self.outputs]
        for n in names:
            if names.count(n) > 1:
                raise SpecError("inputs/outputs", n, "unique tensor names")
        check_scheduling(self.max_batch_size, self.dynamic_batching, self.sequence_batching)
        self._check_output_names()
        object.__setattr__(self, "parameters", dict(sorted(self.parameters.items())))
        own = set(formats.TENSOR_NAMES.values())  # tritonize's own keys, not the backend's
        check_backend_options(self.backend, {k: v for k, v in self.parameters.items() if k not in own},
                              self.optimization)
        for w in self.warmup:
            limit = max(self.max_batch_size, 1)
            if w.batch_size > limit:
                raise SpecError(f"model_warmup.{w.name}.batch_size", w.batch_size, f"<= {limit}")
        if self.default_model_filename is not None:
            check_name(self.default_model_filename, "default_model_filename")

    @property
    def platform(self) -> str:
        return formats.BACKENDS[self.backend].platform

    @property
    def model_filename(self) -> str:
        return self.default_model_filename or formats.BACKENDS[self.backend].default_filename

    def _check_output_names(self) -> None:
        pattern = formats.BACKENDS[self.backend].output_names
        if pattern is None:
            return
        for i, out in enumerate(self.outputs):
            if out.name != pattern.format(i=i):
                raise SpecError(f"outputs[{i}].name", out.name, f"'{pattern.format(i=i)}' (the {self.backend} "
                                "backend maps other output names by position)")

    def to_proto(self) -> Any:
        """The ModelConfig this spec means, built without the templates (the cross-check)."""
        m = pb.ModelConfig(name=self.name, backend=self.backend, max_batch_size=self.max_batch_size)
        for t in self.inputs:
            t.to_proto(m.input.add())
        for t in self.outputs:
            t.to_proto(m.output.add())
        if self.dynamic_batching is not None:
            self.dynamic_batching.to_proto(m.dynamic_batching)
        if self.sequence_batching is not None:
            self.sequence_batching.to_proto(m.sequence_batching)
        for g in self.instance_group:
            g.to_proto(m.instance_group.add())
        if self.version_policy is not None:
            self.version_policy.to_proto(m.version_policy)
        for w in self.warmup:
            w.to_proto(m.model_warmup.add())
        if self.response_cache:
            m.response_cache.enable = True
        if not self.optimization.empty:
            self.optimization.to_proto(m.optimization)
        for key, value in self.parameters.items():
            m.parameters[key].string_value = value
        if self.default_model_filename:
            m.default_model_filename = self.default_model_filename
        return m
