"""The declarative repository spec, ``tritonize.toml``: several models, each with formats, batching, instances,
versions. Every key is checked; an unknown or mistyped one is a ``SpecError`` naming its full path.

    repository = "."                       # where to build, relative to this file (default: its directory)
    triton_version = "24.10"               # the NGC release that serves it (default: the local server's, 24.10)

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

A model's table is ``ModelRequest``'s fields by name (``request_from_table``); ``request_to_table`` writes a
request back, and the manifest records that table, so ``build --from-manifest`` rebuilds the same model.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.core import formats, releases

from .errors import SpecError
from .io_spec import DeclaredTensor
from .request import FormatOptions, ModelRequest
from .toml_form import convert, from_table, to_table, to_value

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


_FIELDS = [f.name for f in dataclasses.fields(ModelRequest) if f.name not in ("name", "format_options")]
_FILES = ("example_inputs", "labels")  # paths relative to the spec
_FORMAT_KEYS = ("parameters", "tolerance", "optimization", "accuracy_budget", "min_cosine_mean", "min_cosine_min",
                "min_neighbor_agreement", "max_relative_error")


def _relative(ref: str | None, base: Path) -> str | None:
    """Files named in the spec are relative to it; ``module:function`` references stay as they are."""
    if ref and (ref.endswith((".npz", ".pt", ".onnx")) or ".py:" in ref):
        return str(base / ref)
    return ref


def _format_options(fmt: str, table: Any, where: str, base: Path) -> FormatOptions:
    known = [*_FORMAT_KEYS, *formats.FORMATS[fmt].options]
    table = dict(convert(table, Mapping[str, Any], where))
    if "tolerance" in table:  # a partial tolerance keeps the format's defaults for the rest
        default = dataclasses.asdict(formats.FORMATS[fmt].tolerance)
        table["tolerance"] = {**default, **convert(table["tolerance"], Mapping[str, Any], f"{where}.tolerance")}
    if isinstance(table.get("quantization"), Mapping) and "calibration_data" in table["quantization"]:
        quantization = dict(table["quantization"])
        quantization["calibration_data"] = _relative(quantization["calibration_data"], base)
        table["quantization"] = quantization
    options: FormatOptions = from_table(FormatOptions, table, where, known)
    return options


def request_from_table(name: str, table: Mapping[str, Any], base: Path, where: str) -> ModelRequest:
    """A ``[models.<name>]`` table as a request; files it names are relative to ``base``."""
    known = [*_FIELDS, *formats.FORMATS]
    data: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SpecError(f"{where}.{key}", value, "one of the keys " + ", ".join(sorted(known)))
        if key not in formats.FORMATS:
            data[key] = value
    if "source" not in data:
        raise SpecError(f"{where}.source", None, "'package.module:function' or a .pt/.onnx path")
    data["source"] = _relative(convert(data["source"], str, f"{where}.source"), base)
    data["evaluation"] = _relative(convert(data.get("evaluation"), str, f"{where}.evaluation")
                                   if "evaluation" in data else None, base)
    for key in _FILES:
        if key in data:
            data[key] = str(base / convert(data[key], str, f"{where}.{key}"))
    text = data.get("preprocess", {}).get("text") if isinstance(data.get("preprocess"), Mapping) else None
    if isinstance(text, Mapping) and isinstance(text.get("tokenizer"), str) and ":" not in text["tokenizer"]:
        data["preprocess"] = {**data["preprocess"], "text": {**text, "tokenizer": str(base / text["tokenizer"])}}
    if "inputs" in data:  # a table keyed by input name
        inputs = convert(data["inputs"], Mapping[str, Mapping[str, Any]], f"{where}.inputs")
        data["inputs"] = [from_table(DeclaredTensor, {"name": input_name, **spec}, f"{where}.inputs.{input_name}")
                          for input_name, spec in inputs.items()]
    if data.get("dynamic_batching") is True:
        data["dynamic_batching"] = {}
    elif data.get("dynamic_batching") is False:
        del data["dynamic_batching"]
    data = {k: v for k, v in data.items() if v is not None}
    try:
        options = {fmt: _format_options(fmt, table[fmt], f"{where}.{fmt}", base)
                   for fmt in formats.FORMATS if fmt in table}
        request = from_table(ModelRequest, {"name": name, **data}, where)
        return dataclasses.replace(request, format_options=options) if options else request
    except SpecError as exc:
        raise exc.within(where) from None


def request_to_table(req: ModelRequest) -> dict[str, Any]:
    """The ``[models.<name>]`` table that ``request_from_table`` reads back as an equal request."""
    table = to_table(req, skip=("name", "format_options", "inputs"))
    if req.inputs:
        table["inputs"] = {t.name: to_table(t, skip=("name",)) for t in req.inputs}
    for fmt, opts in req.format_options.items():
        table[fmt] = to_table(opts)
        if opts.tolerance is not None:
            table[fmt]["tolerance"] = to_value(opts.tolerance)
    return table


def load_project(path: Path | str) -> Project:
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", str(path), "an existing tritonize.toml file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "invalid TOML", f"valid TOML ({exc})") from None
    for key in data:
        if key not in ("repository", "template_dir", "triton_version", "models"):
            raise SpecError(key, data[key], "one of the keys repository, template_dir, triton_version, models")
    base = path.parent
    models = convert(data.get("models", {}), Mapping[str, Mapping[str, Any]], "models")
    if not models:
        raise SpecError("models", {}, "at least one [models.<name>] table")
    template_dir = data.get("template_dir")
    # the release every model targets unless its table names another
    target = {"triton_version": releases.get(convert(data["triton_version"], str, "triton_version")).name
              } if "triton_version" in data else {}
    return Project(
        path=path,
        repository=base / convert(data.get("repository", "."), str, "repository"),
        models=tuple(request_from_table(name, {**target, **table}, base, f"models.{name}")
                     for name, table in models.items()),
        template_dir=base / convert(template_dir, str, "template_dir") if template_dir else None,
    )


def requests_from_manifests(path: Path) -> list[ModelRequest]:
    """The requests recorded in a model's ``tritonize-manifest.json``, or in every manifest of a repository
    (one request per model name: its formats share it)."""
    from .writer import MANIFEST

    files = [path] if path.is_file() else sorted(path.glob(f"*/{MANIFEST}"))
    if not files:
        raise SpecError("--from-manifest", str(path), f"a {MANIFEST} file or a repository holding some")
    requests: dict[str, ModelRequest] = {}
    for file in files:
        try:
            versions = json.loads(file.read_text())["versions"]
            recorded = versions[max(versions, key=int)]["request"]  # the newest version's request
            name = recorded["name"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpecError("--from-manifest", str(file), f"a tritonize manifest with a request ({exc!r})") from None
        if name not in requests:
            table = {k: v for k, v in recorded.items() if k != "name"}
            requests[name] = request_from_table(name, table, Path("."), f"{file}:request")
    return list(requests.values())
