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
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import FormatOptions, ModelRequest
from .config_spec import DynamicBatching, InstanceGroup, Optimization, SequenceBatching, VersionPolicy
from .errors import SpecError
from .export import FORMATS
from .io_spec import DeclaredTensor
from .verify import DEFAULT_TOLERANCES, Tolerance


@dataclass(frozen=True)
class Project:
    path: Path
    repository: Path
    models: tuple[ModelRequest, ...]
    template_dir: Path | None = None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "none")


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
        raise SpecError(where, value, f"a {_type_name(tp)}")
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
        raise (exc if exc.field.startswith(where) else exc.within(where)) from None
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


def _format_options(fmt: str, table: Mapping[str, Any], where: str) -> FormatOptions:
    known = {"parameters", "tolerance", "optimization", "opset"}
    for key in table:
        if key not in known or (key == "opset" and fmt != "onnx"):
            raise SpecError(f"{where}.{key}", table[key], "one of the keys " + ", ".join(
                sorted(known if fmt == "onnx" else known - {"opset"})))
    tolerance = None
    if "tolerance" in table:
        merged = {**dataclasses.asdict(DEFAULT_TOLERANCES[fmt]), **table["tolerance"]}
        tolerance = from_table(Tolerance, merged, f"{where}.tolerance")
    return FormatOptions(
        tolerance=tolerance,
        parameters=_convert(table.get("parameters", {}), Mapping[str, str], f"{where}.parameters"),
        optimization=from_table(Optimization, table.get("optimization", {}), f"{where}.optimization"),
        opset=_convert(table.get("opset", FormatOptions.opset), int, f"{where}.opset"),
    )


_MODEL_KEYS = {
    "source", "formats", "kwargs", "inputs", "outputs", "example_inputs", "max_batch_size", "dynamic_batching",
    "sequence_batching", "instance_group", "version", "version_policy", "warmup_batch_sizes", "response_cache",
    "labels", "default_model_filename", "script", *FORMATS,
}


def model_request(name: str, table: Mapping[str, Any], base: Path, where: str) -> ModelRequest:
    for key in table:
        if key not in _MODEL_KEYS:
            raise SpecError(f"{where}.{key}", table[key], "one of the keys " + ", ".join(sorted(_MODEL_KEYS)))
    if "source" not in table:
        raise SpecError(f"{where}.source", None, "'package.module:function' or a .pt/.onnx path")
    source = _convert(table["source"], str, f"{where}.source")
    if source.endswith((".pt", ".onnx")) or ".py:" in source:
        source = str(base / source)
    inputs = []
    for input_name, spec in _convert(table.get("inputs", {}), Mapping[str, Mapping[str, Any]], f"{where}.inputs").items():
        fields = {"range": "value_range"}
        renamed = {fields.get(k, k): v for k, v in spec.items()}
        inputs.append(from_table(DeclaredTensor, {"name": input_name, **renamed}, f"{where}.inputs.{input_name}"))
    batching = table.get("dynamic_batching")
    if batching is True:
        batching = {}
    paths = {key: base / _convert(table[key], str, f"{where}.{key}") for key in ("labels", "example_inputs")
             if key in table}
    try:
        return ModelRequest(
            name=name,
            source=source,
            formats=_convert(table.get("formats", list(FORMATS)), tuple[str, ...], f"{where}.formats"),
            kwargs=_convert(table.get("kwargs", {}), Mapping[str, Any], f"{where}.kwargs"),
            inputs=tuple(inputs),
            output_names=_convert(table["outputs"], tuple[str, ...], f"{where}.outputs") if "outputs" in table else None,
            example_inputs=paths.get("example_inputs"),
            max_batch_size=_convert(table.get("max_batch_size", ModelRequest.max_batch_size), int,
                                    f"{where}.max_batch_size"),
            dynamic_batching=None if batching in (None, False) else from_table(
                DynamicBatching, batching, f"{where}.dynamic_batching"),
            sequence_batching=from_table(SequenceBatching, table["sequence_batching"], f"{where}.sequence_batching")
            if "sequence_batching" in table else None,
            instance_groups=_convert(table.get("instance_group", []), tuple[InstanceGroup, ...],
                                     f"{where}.instance_group"),
            version=_convert(table["version"], int, f"{where}.version") if "version" in table else None,
            version_policy=_version_policy(table["version_policy"], f"{where}.version_policy")
            if "version_policy" in table else None,
            warmup_batch_sizes=_convert(table["warmup_batch_sizes"], tuple[int, ...], f"{where}.warmup_batch_sizes")
            if "warmup_batch_sizes" in table else None,
            response_cache=_convert(table.get("response_cache", False), bool, f"{where}.response_cache"),
            labels=paths.get("labels"),
            default_model_filename=_convert(table["default_model_filename"], str, f"{where}.default_model_filename")
            if "default_model_filename" in table else None,
            script=_convert(table.get("script", False), bool, f"{where}.script"),
            format_options={fmt: _format_options(fmt, _convert(table[fmt], Mapping[str, Any], f"{where}.{fmt}"),
                                                 f"{where}.{fmt}") for fmt in FORMATS if fmt in table},
        )
    except SpecError as exc:
        raise (exc if exc.field.startswith(where) else exc.within(where)) from None


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
