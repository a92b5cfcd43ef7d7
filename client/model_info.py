"""What a model accepts, read once from its config, and the input checks done before any request is sent.

Everything derived from the config (dtypes, dims, required names) is computed here once, so a call only
compares shapes and dtypes. An error names the input, what was expected and what was given.

Names: where a config must use positional names (the pytorch backend's ``OUTPUT__0``, ``INPUT__0``), tritonize
records the model's own names in the config's ``parameters`` (``tritonize.core.formats.TENSOR_NAMES``). A
tensor's ``key`` is then its own name: calls take and return tensors by key (the config's names are accepted
too), so the same code works against every format of a model; ``name`` stays what goes over the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tritonize.core.datatypes import BY_CONFIG, DataType
from tritonize.core.formats import TENSOR_NAMES

from .errors import InvalidInputError, TritonClientError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: DataType
    dims: tuple[int, ...]  # as in the config: without the batch dimension when the model batches
    optional: bool = False
    label_filename: str = ""
    own_name: str = ""  # the model's own name, where the config must use another (TENSOR_NAMES)

    @property
    def key(self) -> str:
        """The name calls take and return: the model's own, else the config's."""
        return self.own_name or self.name

    def shape(self, batching: bool) -> list[int]:
        """The full shape a request carries, with -1 for variable sizes (and the batch)."""
        return [-1, *self.dims] if batching else list(self.dims)

    def describe(self, batching: bool) -> str:
        dtype = self.dtype.numpy.name if not self.dtype.is_string else "bytes"
        return f"{self.key}{f' ({self.name})' if self.own_name else ''}: {dtype} {self.shape(batching)}"


def _own_names(config: Mapping[str, Any], kind: str, count: int) -> list[str]:
    """The model's own names of its inputs or outputs from the config's parameters, "" each where none."""
    entry = (config.get("parameters") or {}).get(TENSOR_NAMES[kind])
    if not entry:
        return [""] * count
    value = str(entry.get("string_value", "") if isinstance(entry, Mapping) else entry)
    names = value.split(",")
    if len(names) != count or len(set(names)) != count or not all(names):
        raise TritonClientError(f"model '{config.get('name', '')}': parameter {TENSOR_NAMES[kind]} is {value!r}, "
                                f"expected {count} distinct comma-separated names, one per {kind} in config order")
    return names


def _tensors(config: Mapping[str, Any], kind: str) -> tuple[TensorInfo, ...]:
    entries = config.get(kind, [])
    out = []
    for e, own in zip(entries, _own_names(config, kind, len(entries))):
        dims = tuple(int(d) for d in e.get("dims", []))
        name = str(e["name"])
        out.append(TensorInfo(name, BY_CONFIG[str(e.get("data_type", "TYPE_FP32"))], dims,
                              bool(e.get("optional", False)), str(e.get("label_filename", "")),
                              own if own != name else ""))
    return tuple(out)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    max_batch_size: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    platform: str = ""
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], version: str = "") -> ModelInfo:
        """From a config as JSON (HTTP, or gRPC's ``as_json`` where int64 fields arrive as strings)."""
        return cls(str(config["name"]), version, int(config.get("max_batch_size", 0)),
                   _tensors(config, "input"), _tensors(config, "output"),
                   str(config.get("platform") or config.get("backend", "")), config)

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    def input(self, name: str) -> TensorInfo:
        """By key or by config name."""
        return self._inputs[name]

    def output(self, name: str) -> TensorInfo:
        """By key or by config name."""
        for t in self.outputs:
            if name in (t.key, t.name):
                return t
        raise InvalidInputError(f"output '{name}' of model '{self.name}': not an output; expected one of "
                                + ", ".join(t.key for t in self.outputs))

    @cached_property
    def _inputs(self) -> dict[str, TensorInfo]:
        return {**{t.name: t for t in self.inputs}, **{t.key: t for t in self.inputs}}

    @cached_property
    def _renamed(self) -> tuple[bool, dict[str, str]]:
        """Whether any input has a key of its own, and output config name -> key where they differ."""
        return any(t.own_name for t in self.inputs), {t.name: t.key for t in self.outputs if t.own_name}

    def keyed(self, outputs: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Outputs as received (by config name) keyed as calls return them (``TensorInfo.key``)."""
        keys = self._renamed[1]
        return {keys.get(name, name): value for name, value in outputs.items()} if keys else outputs

    @cached_property
    def _plain(self) -> tuple[tuple[str, np.dtype[Any], int, tuple[tuple[int, int], ...]], ...] | None:
        """(name, dtype, rank, fixed (axis, size) pairs) per input, when every input is required and numeric:
        what a well-formed call can be checked against with a few comparisons."""
        if any(t.optional or t.dtype.is_string for t in self.inputs):
            return None
        offset = 1 if self.batching else 0
        return tuple((t.key, t.dtype.numpy, len(t.dims) + offset,
                      tuple((i + offset, d) for i, d in enumerate(t.dims) if d != -1)) for t in self.inputs)

    def _well_formed(self, given: Mapping[str, Any]) -> bool:
        """The common case, checked cheaply: exact names, ndarray of the exact dtype, dims and batch fit."""
        plain = self._plain
        if plain is None or len(given) != len(plain):
            return False
        batch = -1
        for name, dtype, rank, fixed in plain:
            array = given.get(name)
            if type(array) is not np.ndarray or array.dtype != dtype or array.ndim != rank:
                return False
            shape = array.shape
            for axis, size in fixed:
                if shape[axis] != size:
                    return False
            if self.batching:
                if batch not in (-1, shape[0]):
                    return False
                batch = shape[0]
        return not self.batching or 0 < batch <= self.max_batch_size

    def check_inputs(self, given: Mapping[str, Any], cast: bool | str = False) -> dict[str, NDArray[Any]]:
        """Arrays ready to send: names, dtypes, ranks, dims and the batch size checked against the config.
        Dtypes must match exactly unless ``cast`` opts into a conversion: a numpy casting rule ("safe":
        int32 → int64; "same_kind": also float64 → float32), True meaning "same_kind". Raises
        InvalidInputError naming the input, what was expected and what was given."""
        if cast not in _CASTS:
            raise InvalidInputError(f"cast: got {cast!r}, expected True, False or a numpy casting rule "
                                    "(no, equiv, safe, same_kind, unsafe)")
        renamed = self._renamed[0]
        if self._well_formed(given):
            return {t.name: given[t.key] for t in self.inputs} if renamed else dict(given)
        known = self._inputs
        for name in given:
            if name not in known:
                raise InvalidInputError(f"input '{name}' of model '{self.name}': not an input; expected "
                                        + ", ".join(t.describe(self.batching) for t in self.inputs))
        arrays: dict[str, NDArray[Any]] = {}
        batch = None
        for spec in self.inputs:
            key = spec.key if spec.key in given else spec.name
            if key not in given:
                if spec.optional:
                    continue
                raise InvalidInputError(f"input '{spec.key}' of model '{self.name}': missing; expected "
                                        f"{spec.describe(self.batching)}")
            if renamed and spec.key != spec.name and spec.key in given and spec.name in given:
                raise InvalidInputError(f"input '{spec.key}' of model '{self.name}': given twice (also by its "
                                        f"config name '{spec.name}')")
            array = self._array(spec, given[key], cast)
            expected = spec.shape(self.batching)
            if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape)):
                hint = " (the first dimension is the batch: use infer_sample for one sample)" \
                    if self.batching and array.ndim == len(spec.dims) else ""
                raise InvalidInputError(f"input '{spec.key}' of model '{self.name}': shape {list(array.shape)}, "
                                        f"expected {expected}{hint}")
            if self.batching:
                if array.shape[0] > self.max_batch_size:
                    raise InvalidInputError(
                        f"input '{spec.key}' of model '{self.name}': batch of {array.shape[0]}, expected at most "
                        f"max_batch_size {self.max_batch_size} (infer_batch splits larger batches)")
                if batch is not None and array.shape[0] != batch[1]:
                    raise InvalidInputError(f"input '{spec.key}' of model '{self.name}': batch of {array.shape[0]}, "
                                            f"expected {batch[1]} like input '{batch[0]}'")
                batch = batch or (spec.key, array.shape[0])
            arrays[spec.name] = array
        return arrays

    def _array(self, spec: TensorInfo, value: Any, cast: bool | str) -> NDArray[Any]:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        expected = spec.dtype.numpy
        if spec.dtype.is_string:
            if array.dtype.kind in "SUO":
                return array.astype(object) if array.dtype.kind != "O" else array
        elif array.dtype == expected:
            return array
        elif cast and np.can_cast(array.dtype, expected, casting="same_kind" if cast is True else cast):  # type: ignore[arg-type]
            return array.astype(expected)
        wanted = "bytes or str" if spec.dtype.is_string else f"{expected.name} ({spec.dtype.config})"
        rule = "same_kind" if cast is True else cast
        hint = (f" (not a {rule!r} cast)" if cast else
                "" if spec.dtype.is_string else "; pass cast=True to convert within the same kind")
        raise InvalidInputError(f"input '{spec.key}' of model '{self.name}': dtype {array.dtype.name}, expected "
                                f"{wanted}{hint}")

    @cached_property
    def all_outputs(self) -> list[str]:
        """The outputs' config names: what a request asks for."""
        return [t.name for t in self.outputs]

    def output_names(self, selected: Sequence[str] | None) -> list[str]:
        """The config names of the ``selected`` outputs (keys or config names), or of all of them."""
        if not selected:
            return self.all_outputs
        return [self.output(name).name for name in selected]


_CASTS = (False, True, "no", "equiv", "safe", "same_kind", "unsafe")
