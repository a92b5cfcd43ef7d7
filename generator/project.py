"""The declarative repository spec, ``tritonize.toml``: several models, each with formats, batching, instances,
versions. Every key is checked; an unknown or mistyped one is a ``SpecError`` naming its full path.

    repository = "."                       # where to build, relative to this file (default: its directory)

    [models.digits]
    source = "tritonize.generator.examples.digits:build_digits_cnn"
    formats = ["onnx", "torchscript"]
    max_batch_size = 64
    version = 1
    dynamic_batching = { max_queue_delay_microseconds = 500 }
    instance_group = [{ kind = "gpu", count = 2 }]

    [models.digits.onnx]
    parameters = { intra_op_thread_count = "2" }
    tolerance = { atol = 1e-4 }
    optimization = { tensorrt = { precision_mode = "FP16" } }
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import ALL_FORMATS, INT8_FORMATS, FormatOptions, ModelRequest
from .config_spec import DynamicBatching, InstanceGroup, Optimization, SequenceBatching, VersionPolicy
from .errors import SpecError
from .export import FORMATS
from .io_spec import DeclaredTensor
from .optimize import Quantization
from .verify import DEFAULT_TOLERANCES, Tolerance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Project:
    path: Path
    repository: Path
    models: tuple[ModelRequest, ...]
    template_dir: Path | None = None


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check and convert one TOML value to the annotated type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise SpecError(where, value, f"a table of {tp.__name__} fields")
        return from_table(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(where, value, "a list")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(value, Mapping):
            raise SpecError(where, value, "a table")
        key_type, value_type = args
        out = {}
        for k, v in value.items():
            if key_type is int and not str(k).isdigit():
                raise SpecError(f"{where}.{k}", k, "an integer key")
            out[key_type(k)] = _convert(v, value_type, f"{where}.{k}")
        return out
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise SpecError(where, value, _TYPE_NAMES[tp])
    return value


def from_table(cls: Any, table: Mapping[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table; unknown keys and wrong types name their path."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise SpecError(f"{where}.{key}", value, f"one of the keys {', '.join(known)}")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise exc.within(where) from None
    except TypeError as exc:
        raise SpecError(where, dict(table), f"the required keys of {cls.__name__} ({exc})") from None


def _version_policy(value: Any, where: str) -> VersionPolicy:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise SpecError(where, value, "{ latest = N } | { all = true } | { specific = [versions] }")
    (kind, arg), = value.items()
    if kind == "latest":
        return VersionPolicy("latest", num_versions=_convert(arg, int, f"{where}.latest"))
    if kind == "all":
        return VersionPolicy("all")
    if kind == "specific":
        return VersionPolicy("specific", versions=_convert(arg, tuple[int, ...], f"{where}.specific"))
    raise SpecError(where, kind, "latest, all or specific")


def _format_options(fmt: str, table: Mapping[str, Any], where: str, base: Path) -> FormatOptions:
    known = {"parameters", "tolerance", "optimization", "accuracy_budget"}
    known |= {"opset"} if fmt.startswith("onnx") else set()
    known |= {"quantization"} if fmt in INT8_FORMATS else set()
    for key in table:
        if key not in known:
            raise SpecError(f"{where}.{key}", table[key], "one of the keys " + ", ".join(sorted(known)))
    tolerance = None
    if "tolerance" in table:
        merged = {**dataclasses.asdict(DEFAULT_TOLERANCES[INT8_FORMATS.get(fmt, fmt)]), **table["tolerance"]}
        tolerance = from_table(Tolerance, merged, f"{where}.tolerance")
    try:
        return FormatOptions(
            tolerance=tolerance,
            parameters=_convert(table.get("parameters", {}), Mapping[str, str], f"{where}.parameters"),
            optimization=from_table(Optimization, table.get("optimization", {}), f"{where}.optimization"),
            opset=_convert(table.get("opset", FormatOptions.opset), int, f"{where}.opset"),
            quantization=_quantization(table["quantization"], f"{where}.quantization", base)
            if "quantization" in table else None,
            accuracy_budget=_convert(table.get("accuracy_budget", FormatOptions.accuracy_budget), float,
                                     f"{where}.accuracy_budget"),
        )
    except SpecError as exc:
        raise exc.within(where) from None


_MODEL_KEYS = {
    "source", "formats", "kwargs", "inputs", "outputs", "example_inputs", "max_batch_size", "dynamic_batching",
    "sequence_batching", "instance_group", "version", "version_policy", "warmup_batch_sizes", "response_cache",
    "labels", "default_model_filename", "script", "prune", "evaluation", *ALL_FORMATS,
}


def model_request(name: str, table: Mapping[str, Any], base: Path, where: str) -> ModelRequest:
    for key in table:
        if key not in _MODEL_KEYS:
            raise SpecError(f"{where}.{key}", table[key], "one of the keys " + ", ".join(sorted(_MODEL_KEYS)))
    if "source" not in table:
        raise SpecError(f"{where}.source", None, "'package.module:function' or a .pt/.onnx path")

    def get(key: str, tp: Any, default: Any = None) -> Any:
        return _convert(table[key], tp, f"{where}.{key}") if key in table else default

    def table_of(key: str, cls: Any) -> Any:
        return from_table(cls, table[key], f"{where}.{key}") if key in table else None

    source = get("source", str)
    if source.endswith((".pt", ".onnx")) or ".py:" in source:
        source = str(base / source)
    inputs = tuple(
        from_table(DeclaredTensor, {"name": input_name, **{("value_range" if k == "range" else k): v
                                                            for k, v in spec.items()}},
                   f"{where}.inputs.{input_name}")
        for input_name, spec in get("inputs", Mapping[str, Mapping[str, Any]], {}).items())
    batching = table.get("dynamic_batching", False)
    try:
        return ModelRequest(
            name=name,
            source=source,
            formats=get("formats", tuple[str, ...], FORMATS),
            kwargs=get("kwargs", Mapping[str, Any], {}),
            inputs=inputs,
            output_names=get("outputs", tuple[str, ...]),
            example_inputs=base / get("example_inputs", str) if "example_inputs" in table else None,
            max_batch_size=get("max_batch_size", int, ModelRequest.max_batch_size),
            dynamic_batching=None if batching is False else from_table(
                DynamicBatching, {} if batching is True else batching, f"{where}.dynamic_batching"),
            sequence_batching=table_of("sequence_batching", SequenceBatching),
            instance_groups=get("instance_group", tuple[InstanceGroup, ...], ()),
            version=get("version", int),
            version_policy=_version_policy(table["version_policy"], f"{where}.version_policy")
            if "version_policy" in table else None,
            warmup_batch_sizes=get("warmup_batch_sizes", tuple[int, ...]),
            response_cache=get("response_cache", bool, False),
            labels=base / get("labels", str) if "labels" in table else None,
            default_model_filename=get("default_model_filename", str),
            script=get("script", bool, False),
            prune=get("prune", float),
            evaluation=_relative(get("evaluation", str), base),
            format_options={fmt: _format_options(fmt, get(fmt, Mapping[str, Any]), f"{where}.{fmt}", base)
                            for fmt in ALL_FORMATS if fmt in table},
        )
    except SpecError as exc:
        raise exc.within(where) from None


def _quantization(table: Any, where: str, base: Path) -> Quantization:
    q = from_table(Quantization, table, where)
    return dataclasses.replace(q, calibration_data=_relative(q.calibration_data, base))


def _relative(ref: str | None, base: Path) -> str | None:
    """Files named in the spec are relative to it; ``module:function`` references stay as they are."""
    return str(base / ref) if ref and ref.endswith(".npz") else ref


def load_project(path: Path | str) -> Project:
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", str(path), "an existing tritonize.toml file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "invalid TOML", f"valid TOML ({exc})") from None
    for key in data:
        if key not in ("repository", "template_dir", "models"):
            raise SpecError(key, data[key], "one of the keys repository, template_dir, models")
    base = path.parent
    models = _convert(data.get("models", {}), Mapping[str, Mapping[str, Any]], "models")
    if not models:
        raise SpecError("models", {}, "at least one [models.<name>] table")
    template_dir = data.get("template_dir")
    return Project(
        path=path,
        repository=base / _convert(data.get("repository", "."), str, "repository"),
        models=tuple(model_request(name, table, base, f"models.{name}") for name, table in models.items()),
        template_dir=base / _convert(template_dir, str, "template_dir") if template_dir else None,
    )
