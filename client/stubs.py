"""Typed Python stubs for the models of a Triton repository (``tritonize client-stubs``).

One generated module holds, per model, a ``TypedDict`` of its outputs and two thin classes over the typed
client (``DigitsOnnx`` over ``TritonClient``, ``AsyncDigitsOnnx`` over ``AsyncTritonClient``) whose
``infer`` / ``infer_sample`` / ``infer_batch`` take the inputs as keyword arguments typed by their dtype, so
``mypy --strict`` catches a wrong input name or dtype before anything runs. The configs come from a repository
directory (parsed with Triton's own protobuf) or from a live server; both give the same stubs for the same
configs. Tensors go by the model's own names (``TensorInfo.key``), so the stubs of a model's ONNX and TorchScript
builds take and return the same names. The output is deterministic and built from one small template per piece.
"""

from __future__ import annotations

import keyword
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from tritonize.core.check.backends import platform_backends
from tritonize.core.datatypes import DataType

from .client import TritonClient
from .errors import UsageError
from .model_info import ModelInfo, TensorInfo

# --- reading configs ----------------------------------------------------------------------------------------


def model_infos_from_repository(repo: Path) -> list[ModelInfo]:
    """Every ``<repo>/<model>/config.pbtxt``, parsed with Triton's protobuf, sorted by model name."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    repo = Path(repo)
    if not repo.is_dir():
        raise UsageError(f"repository: {str(repo)!r} is not a directory")
    infos = []
    for path in sorted(repo.glob("*/config.pbtxt")):
        try:
            message = text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a valid model config: {exc}") from None
        config = json_format.MessageToDict(message, preserving_proto_field_name=True)
        config.setdefault("name", path.parent.name)
        infos.append(_info(config, str(path)))
    return sorted(infos, key=lambda i: i.name)


def model_infos_from_server(client: TritonClient) -> list[ModelInfo]:
    """Every model with a READY version on the server, from the config Triton serves, sorted by name."""
    ready = sorted({str(m["name"]) for m in client.list_models() if m.get("state") == "READY"})
    return [_info(client.model_config(name), f"config of {name}") for name in ready]


def _info(config: Mapping[str, Any], where: str) -> ModelInfo:
    for key in ("input", "output"):
        for tensor in config.get(key, []):
            if "data_type" not in tensor or tensor["data_type"] == "TYPE_INVALID":
                raise UsageError(f"{where}: {key} '{tensor.get('name', '')}' has no data_type")
    try:
        return ModelInfo.from_config(config)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{where}: not a usable model config: {exc!r}") from None


# --- names ----------------------------------------------------------------------------------------------------

_IMPORTED = {"Any", "AsyncModelClient", "AsyncTritonClient", "ModelClient", "NDArray", "TritonClient", "TypedDict"}
# names the generated method bodies use: an argument may not shadow them
_RESERVED = {"self", "cls", "cast", "timeout_s", "priority", "max_concurrency", "_present"}


def class_name(model: str) -> str:
    """``digits_onnx`` -> ``DigitsOnnx``; anything that is not an ASCII letter or digit separates words."""
    words = "".join(c if c.isascii() and c.isalnum() else " " for c in model).split()
    name = "".join(w[0].upper() + w[1:] for w in words) or "Model"
    return "Model" + name if name[0].isdigit() else name


def argument_name(tensor: str, taken: set[str]) -> str:
    """A keyword argument for an input: an identifier, no Python keyword, no name the body uses, unique."""
    name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in tensor) or "_"
    if name[0].isdigit():
        name = "_" + name
    while keyword.iskeyword(name) or name in _RESERVED or name in taken:
        name += "_"
    return name


def _is_key(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _literal(text: str) -> str:
    """A double-quoted Python string literal."""
    escaped = "".join("\\" + c if c in '"\\' else c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return f'"{escaped}"'


def _doc(text: str) -> str:
    """Text safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- types ------------------------------------------------------------------------------------------------------

_STRING_INPUT = "NDArray[np.object_] | NDArray[np.bytes_] | NDArray[np.str_]"


def scalar_type(dtype: DataType) -> str:
    """The numpy scalar type of a Triton data type, as written in the stubs (``np.float32``)."""
    if dtype.is_string:
        return "np.object_"
    return "np." + {"bool": "bool_"}.get(dtype.numpy.name, dtype.numpy.name)


def input_type(dtype: DataType) -> str:
    return _STRING_INPUT if dtype.is_string else f"NDArray[{scalar_type(dtype)}]"


def output_type(dtype: DataType) -> str:
    return f"NDArray[{scalar_type(dtype)}]"


# --- one model ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Argument:
    name: str  # the Python keyword argument
    tensor: TensorInfo  # the input it carries


@dataclass(frozen=True)
class _Model:
    info: ModelInfo
    cls: str  # DigitsOnnx; also DigitsOnnxOutputs and AsyncDigitsOnnx
    arguments: tuple[_Argument, ...]

    @property
    def outputs_cls(self) -> str:
        return f"{self.cls}Outputs"

    @property
    def async_cls(self) -> str:
        return f"Async{self.cls}"


def _models(infos: list[ModelInfo]) -> list[_Model]:
    taken = set(_IMPORTED)
    models = []
    for info in sorted(infos, key=lambda i: i.name):
        base = class_name(info.name)
        cls, n = base, 1
        while {cls, f"{cls}Outputs", f"Async{cls}"} & taken:
            n += 1
            cls = f"{base}{n}"
        taken |= {cls, f"{cls}Outputs", f"Async{cls}"}
        names: set[str] = set()
        arguments = []
        for tensor in info.inputs:
            name = argument_name(tensor.key, names)
            names.add(name)
            arguments.append(_Argument(name, tensor))
        models.append(_Model(info, cls, tuple(arguments)))
    return models


def describe(info: ModelInfo, arguments: tuple[_Argument, ...] = ()) -> str:
    """The docstring body: what the config says about serving this model."""
    config = info.config
    backend = str(config.get("backend") or platform_backends().get(str(config.get("platform", "")), ""))
    engine = _one_line(f"backend {backend}" if backend else f"platform {config.get('platform') or 'unknown'}")
    renamed = {a.tensor.key: a.name for a in arguments if a.name != a.tensor.key}
    lines = [f"Model {_literal(info.name)}: {engine}, max_batch_size {info.max_batch_size}.", "", "Inputs:"]
    for t in info.inputs:
        name = f"{_literal(t.key)} (argument {renamed[t.key]})" if t.key in renamed else t.key
        optional = ", optional" if t.optional else ""
        lines.append(f"    {_one_line(name)}{_config_name(t)}: {t.dtype.config} {t.shape(info.batching)}{optional}")
    lines.append("Outputs:")
    for t in info.outputs:
        name = t.key if _is_key(t.key) else _literal(t.key)
        labels = f", labels in {_one_line(t.label_filename)}" if t.label_filename else ""
        lines.append(f"    {_one_line(name)}{_config_name(t)}: {t.dtype.config} {t.shape(info.batching)}{labels}")
    lines.append("Dynamic batching: " + ("on" if "dynamic_batching" in config else "off"))
    if "sequence_batching" in config:
        lines.append("Sequence batching: on")
    lines.append(f"Instance groups: {_instance_groups(config.get('instance_group', []))}")
    return "\n".join(lines)


def _config_name(t: TensorInfo) -> str:
    """Where the config names a tensor otherwise than the model (TorchScript's OUTPUT__0): that name."""
    return f" ({_one_line(t.name)} in the config)" if t.own_name else ""


def _instance_groups(groups: list[Mapping[str, Any]]) -> str:
    if not groups:
        return "not set (Triton's default)"
    parts = []
    for g in groups:
        part = f"{int(g.get('count') or 1)} x {g.get('kind') or 'KIND_AUTO'}"
        if g.get("gpus"):
            part += " on GPUs " + ", ".join(str(int(x)) for x in g["gpus"])
        parts.append(part)
    return "; ".join(parts)


# --- templates ------------------------------------------------------------------------------------------------------

_HEADER = Template('''\
# Generated by tritonize from $source. Do not edit: regenerate with `tritonize client-stubs`.
"""Typed clients for the Triton models of $source_doc: $count model(s)."""

from __future__ import annotations

from typing import Any, TypedDict, cast

import numpy as np
from numpy.typing import NDArray

from tritonize.client import AsyncModelClient, AsyncTritonClient, ModelClient, TritonClient

__all__ = [$exports]


def _present(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs to send: optional inputs left at None are not sent."""
    return {name: value for name, value in inputs.items() if value is not None}
''')

_OUTPUTS_CLASS = Template('''

class $cls(TypedDict):
    """The outputs of $model by name."""

$fields
''')

_OUTPUTS_FUNCTIONAL = Template('''

$cls = TypedDict("$cls", {$fields})
''')

_SYNC_CLASS = Template('''

class $cls:
    """$doc
    """

    MODEL_NAME: str = $model

    def __init__(self, client: TritonClient, version: str = "") -> None:
        self.model: ModelClient = client.model(self.MODEL_NAME, version)
$methods''')

_ASYNC_CLASS = Template('''

class $cls:
    """$doc

    Through an AsyncTritonClient: ``model = await $cls.create(client)``.
    """

    MODEL_NAME: str = $model

    def __init__(self, model: AsyncModelClient) -> None:
        self.model = model

    @classmethod
    async def create(cls, client: AsyncTritonClient, version: str = "") -> $cls:
        return cls(await client.model(cls.MODEL_NAME, version))
$methods''')

_METHOD = Template('''
    ${async_}def $method(
        self,
        *,
$parameters
    ) -> $returns:
        """$doc"""
        return cast($returns, ${await_}self.model.$method(
            $inputs,
            $options,
        ))
''')

# per method: the options it passes on (after the inputs) and its docstring, batching and not
_OPTIONS = {
    "infer": (("timeout_s: float | None = None", "priority: int = 0"), "timeout_s=timeout_s, priority=priority"),
    "infer_sample": (("timeout_s: float | None = None", "priority: int = 0"), "timeout_s=timeout_s, priority=priority"),
    "infer_batch": (("timeout_s: float | None = None", "max_concurrency: int | None = None"),
                    "timeout_s=timeout_s, max_concurrency=max_concurrency"),
}


def _method_doc(method: str, info: ModelInfo) -> str:
    size = info.max_batch_size
    if method == "infer_sample":
        return "One sample: every input and output without the batch dimension."
    if method == "infer_batch":
        return (f"Any batch size: split into requests of at most {size}, sent concurrently, reassembled in order."
                if info.batching else "One request (the model does not batch): the same as infer().")
    return (f"One request: every input with the batch dimension first (at most {size})." if info.batching
            else "One request: every input with the shape of the config (the model does not batch).")


def _render_method(model: _Model, method: str, asynchronous: bool) -> str:
    options, passed = _OPTIONS[method]
    parameters = [f"{a.name}: {input_type(a.tensor.dtype)}" + (" | None = None" if a.tensor.optional else "")
                  for a in model.arguments]
    pairs = ", ".join(f"{_literal(a.tensor.key)}: {a.name}" for a in model.arguments)
    optional = any(a.tensor.optional for a in model.arguments)
    return _METHOD.substitute(
        async_="async " if asynchronous else "", await_="await " if asynchronous else "", method=method,
        parameters="\n".join(f"        {p}," for p in [*parameters, *options]), returns=model.outputs_cls,
        doc=_method_doc(method, model.info), inputs=f"_present({{{pairs}}})" if optional else f"{{{pairs}}}",
        options=passed)


def _render_outputs(model: _Model) -> str:
    outputs = model.info.outputs
    if outputs and all(_is_key(t.key) and not t.key.startswith("__") for t in outputs):  # __x: name-mangled
        fields = "\n".join(f"    {t.key}: {output_type(t.dtype)}" for t in outputs)
        return _OUTPUTS_CLASS.substitute(cls=model.outputs_cls, model=_doc(_literal(model.info.name)), fields=fields)
    fields = ", ".join(f"{_literal(t.key)}: {output_type(t.dtype)}" for t in outputs)
    return _OUTPUTS_FUNCTIONAL.substitute(cls=model.outputs_cls, fields=fields)


def _render_model(model: _Model) -> str:
    methods = ["infer", "infer_sample", "infer_batch"] if model.info.batching else ["infer", "infer_batch"]
    doc = _doc(describe(model.info, model.arguments)).replace("\n", "\n    ").replace("\n    \n", "\n\n")
    name = _literal(model.info.name)
    sync = _SYNC_CLASS.substitute(cls=model.cls, doc=doc, model=name,
                                  methods="".join(_render_method(model, m, False) for m in methods))
    asynchronous = _ASYNC_CLASS.substitute(cls=model.async_cls, doc=doc, model=name,
                                           methods="".join(_render_method(model, m, True) for m in methods))
    return _render_outputs(model) + sync + asynchronous


def render_stubs(infos: list[ModelInfo], source: str) -> str:
    """One Python module with typed classes for ``infos``; the same configs always give the same text."""
    models = _models(infos)
    exports = sorted(name for m in models for name in (m.cls, m.outputs_cls, m.async_cls))
    header = _HEADER.substitute(source=_one_line(source), source_doc=_doc(_one_line(source)), count=len(models),
                                exports="".join(f"\n    {_literal(n)}," for n in exports) + ("\n" if exports else ""))
    return header + "".join(_render_model(m) for m in models)


def write_stubs(infos: list[ModelInfo], out: Path, source: str) -> None:
    """Render and write atomically (a temporary file in the same directory, then a rename)."""
    out = Path(out)
    text = render_stubs(infos, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
