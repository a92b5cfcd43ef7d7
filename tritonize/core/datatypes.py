"""Triton data types: the config name (``TYPE_FP32``), the wire name (``FP32``) and the numpy dtype.

One table, so the config writer, the checker and the client agree. Strings are ``TYPE_STRING`` in a
config but ``BYTES`` on the wire and ``object`` in numpy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError


@dataclass(frozen=True)
class DataType:
    config: str  # model_config.proto enum name, e.g. "TYPE_FP32"
    wire: str  # KServe v2 protocol name, e.g. "FP32"
    numpy: np.dtype[Any]  # object for strings

    @property
    def is_float(self) -> bool:
        return self.numpy.kind == "f"

    @property
    def is_string(self) -> bool:
        return self.wire == "BYTES"

    def __str__(self) -> str:
        return self.config


_TABLE = [
    DataType("TYPE_BOOL", "BOOL", np.dtype(np.bool_)),
    DataType("TYPE_UINT8", "UINT8", np.dtype(np.uint8)),
    DataType("TYPE_UINT16", "UINT16", np.dtype(np.uint16)),
    DataType("TYPE_UINT32", "UINT32", np.dtype(np.uint32)),
    DataType("TYPE_UINT64", "UINT64", np.dtype(np.uint64)),
    DataType("TYPE_INT8", "INT8", np.dtype(np.int8)),
    DataType("TYPE_INT16", "INT16", np.dtype(np.int16)),
    DataType("TYPE_INT32", "INT32", np.dtype(np.int32)),
    DataType("TYPE_INT64", "INT64", np.dtype(np.int64)),
    DataType("TYPE_FP16", "FP16", np.dtype(np.float16)),
    DataType("TYPE_FP32", "FP32", np.dtype(np.float32)),
    DataType("TYPE_FP64", "FP64", np.dtype(np.float64)),
    DataType("TYPE_STRING", "BYTES", np.dtype(object)),
]

BY_CONFIG: dict[str, DataType] = {t.config: t for t in _TABLE}
BY_WIRE: dict[str, DataType] = {t.wire: t for t in _TABLE}
_BY_NUMPY: dict[np.dtype[Any], DataType] = {t.numpy: t for t in _TABLE}
_ALIASES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "half": "TYPE_FP16", "float32": "TYPE_FP32",
    "float": "TYPE_FP32", "float64": "TYPE_FP64", "double": "TYPE_FP64", "string": "TYPE_STRING",
    "bytes": "TYPE_STRING",
}


def parse_data_type(name: str, field: str = "data_type") -> DataType:
    """Accept ``TYPE_FP32``, ``FP32``, ``fp32`` or ``float32`` (and the other types likewise)."""
    key = name.strip()
    upper = key.upper()
    found = (
        BY_CONFIG.get(upper)
        or BY_CONFIG.get("TYPE_" + upper)
        or BY_WIRE.get(upper)
        or BY_CONFIG.get(_ALIASES.get(key.lower(), ""))
    )
    if found is None:
        raise SpecError(field, name, "one of " + ", ".join(sorted(_ALIASES)) + " (or a TYPE_* name)")
    return found


@functools.lru_cache(maxsize=64)
def wire_type(dtype: np.dtype[Any]) -> str:
    """The protocol name of a numpy dtype (cached: called for every tensor of every request)."""
    return from_numpy(dtype).wire


def from_numpy(dtype: np.dtype[Any] | type) -> DataType:
    dt = np.dtype(dtype)
    if dt.kind in "SUO":
        return BY_CONFIG["TYPE_STRING"]
    found = _BY_NUMPY.get(dt)
    if found is None:
        raise SpecError("dtype", str(dt), "a numpy dtype Triton supports: " + ", ".join(sorted(_ALIASES)))
    return found
