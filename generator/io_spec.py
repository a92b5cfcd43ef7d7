"""Model inputs and outputs: names, data types and dims, declared or inferred from example inputs.

Dims follow Triton's config convention: without the batch dimension when the model batches
(``max_batch_size > 0``), ``-1`` for a variable dim. ``SampleFactory`` makes input batches of any size
(varying the variable dims) for export and verification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from tritonize.core.datatypes import DataType, from_numpy, parse_data_type

from .config_spec import TENSOR_NAME_RE, TensorConfig, check_name
from .errors import SpecError

DEFAULT_INT_RANGE = (0, 10)


@dataclass(frozen=True)
class DeclaredTensor:
    """What the user says about one input (everything optional but the name)."""

    name: str
    dtype: str | None = None
    dims: tuple[int, ...] | None = None
    range: tuple[int, int] | None = None  # [low, high) for synthesized integer inputs

    def __post_init__(self) -> None:
        check_name(self.name, f"inputs.{self.name}", TENSOR_NAME_RE)
        if self.dtype is not None:
            parse_data_type(self.dtype, f"inputs.{self.name}.dtype")
        if self.dims is not None:
            dims = tuple(self.dims)
            object.__setattr__(self, "dims", dims)
            if any(isinstance(d, bool) or not isinstance(d, int) or d == 0 or d < -1 for d in dims):
                raise SpecError(f"inputs.{self.name}.dims", list(dims), "sizes >= 1 or -1 ([] for a scalar per sample)")
        if self.range is not None:
            low, high = self.range
            if not high > low:
                raise SpecError(f"inputs.{self.name}.range", list(self.range), "[low, high) with high > low")

    @classmethod
    def parse(cls, text: str) -> DeclaredTensor:
        """``name``, ``name:dtype`` or ``name:dtype:d1,d2`` (the CLI's ``--input``)."""
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise SpecError("--input", text, "NAME[:DTYPE[:D1,D2,...]] e.g. ids:int64:-1")
        dims = None
        if len(parts) == 3:
            try:
                dims = tuple(int(d) for d in parts[2].split(","))
            except ValueError:
                raise SpecError(f"--input {parts[0]} dims", parts[2], "comma-separated integers") from None
        return cls(parts[0], parts[1] if len(parts) > 1 and parts[1] else None, dims)


@dataclass(frozen=True)
class TensorIO:
    name: str
    dtype: DataType
    dims: tuple[int, ...]  # what the model sees per sample; () for a scalar per sample
    value_range: tuple[int, int] | None = None

    @property
    def config_dims(self) -> tuple[int, ...]:
        """Triton needs at least one dim: a scalar per sample is dims [1] reshaped to [] (server#7981)."""
        return self.dims or (1,)

    def config(self, name: str | None = None, label_filename: str | None = None) -> TensorConfig:
        return TensorConfig(name or self.name, self.dtype.config, self.config_dims,
                            reshape=None if self.dims else (), label_filename=label_filename)

    def describe(self) -> str:
        return f"{self.name} {self.dtype.numpy.name}{list(self.dims)}"


def model_dims(shape: tuple[int, ...], batching: bool) -> tuple[int, ...]:
    return tuple(shape[1:]) if batching else tuple(shape)


def infer_inputs(
    names: list[str],
    examples: Mapping[str, np.ndarray] | None,
    declared: Mapping[str, DeclaredTensor],
    batching: bool,
) -> list[TensorIO]:
    """Merge example inputs with declarations; any disagreement is a SpecError naming the tensor."""
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise SpecError(f"inputs.{unknown[0]}", unknown[0], "an input of the model: " + ", ".join(names))
    result = []
    for name in names:
        decl = declared.get(name, DeclaredTensor(name))
        example = None if examples is None else examples.get(name)
        if example is None:
            if decl.dtype is None or decl.dims is None:
                raise SpecError(f"inputs.{name}", "no example input and no declared dtype/dims",
                                "example inputs (from the model callable, or an .npz: example_inputs / "
                                "--example-inputs), or a declaration (inputs / --input NAME:DTYPE:DIMS)")
            result.append(TensorIO(name, parse_data_type(decl.dtype), decl.dims, decl.range))
            continue
        if batching and example.ndim == 0:
            raise SpecError(f"inputs.{name}", "a scalar example", "a batch whose first dimension is the batch")
        dtype = from_numpy(example.dtype)
        if decl.dtype is not None and parse_data_type(decl.dtype) != dtype:
            raise SpecError(f"inputs.{name}.dtype", decl.dtype, f"{dtype.numpy.name}, the example input's dtype")
        dims = model_dims(example.shape, batching)
        if decl.dims is not None:
            agrees = len(decl.dims) == len(dims) and all(d in (-1, e) for d, e in zip(decl.dims, dims))
            if not agrees:
                raise SpecError(f"inputs.{name}.dims", list(decl.dims),
                                f"dims agreeing with the example input {list(dims)} (batch dim excluded: "
                                f"{batching}); use -1 for variable dims")
            dims = decl.dims
        result.append(TensorIO(name, dtype, dims, decl.range))
    return result


class SampleFactory:
    """Input batches of any size. A user function wins; otherwise synthesize from examples or declarations.

    Synthesized floats follow the example's mean and std; integer and bool inputs re-sample example rows
    (token ids and masks stay meaningful). Variable dims that had the same size in the example (ids and
    their mask) get the same new size.
    """

    def __init__(
        self,
        inputs: list[TensorIO],
        batching: bool,
        examples: Mapping[str, np.ndarray] | None = None,
        user_fn: Callable[[int, int], Mapping[str, object]] | None = None,
    ) -> None:
        self.inputs = inputs
        self.batching = batching
        self.examples = dict(examples) if examples else {}
        self.user_fn = user_fn

    def batch(self, size: int, seed: int, vary_dims: bool = False) -> dict[str, np.ndarray]:
        """A batch of ``size`` samples (``size`` is ignored without batching: one sample)."""
        if self.user_fn is not None:
            return self._from_user(size, seed)
        rng = np.random.default_rng(seed)
        lengths: dict[int, int] = {}
        out = {}
        for spec in self.inputs:
            example = self.examples.get(spec.name)
            shape = self._shape(spec, example, rng, lengths, vary_dims)
            full = (size, *shape) if self.batching else shape
            out[spec.name] = self._values(spec, example, full, rng)
        return out

    def _shape(self, spec: TensorIO, example: np.ndarray | None, rng: np.random.Generator,
               lengths: dict[int, int], vary: bool) -> tuple[int, ...]:
        base = model_dims(example.shape, self.batching) if example is not None else None
        shape = []
        for i, d in enumerate(spec.dims):
            if d != -1:
                shape.append(d)
                continue
            key = base[i] if base is not None else -1
            if key not in lengths:
                start = base[i] if base is not None else 5
                lengths[key] = int(rng.integers(max(1, start // 2), start * 2 + 2)) if vary else start
            shape.append(lengths[key])
        return tuple(shape)

    def _values(self, spec: TensorIO, example: np.ndarray | None, shape: tuple[int, ...],
                rng: np.random.Generator) -> np.ndarray:
        dtype = spec.dtype.numpy
        if spec.dtype.is_float:
            mean, std = (float(example.mean()), float(example.std()) or 1.0) if example is not None else (0.0, 1.0)
            return rng.normal(mean, std, size=shape).astype(dtype)
        if example is not None and spec.value_range is None:
            rows = example if self.batching else example[None]
            picked = rows[rng.integers(0, len(rows), size=shape[0] if self.batching else 1)]
            for axis, target in enumerate(shape[1:] if self.batching else shape, start=1):
                picked = np.take(picked, np.arange(target) % picked.shape[axis], axis=axis)
            return (picked if self.batching else picked[0]).astype(dtype)
        if dtype == np.bool_:
            return rng.integers(0, 2, size=shape).astype(bool)
        low, high = spec.value_range or DEFAULT_INT_RANGE
        return rng.integers(low, high, size=shape).astype(dtype)

    def _from_user(self, size: int, seed: int) -> dict[str, np.ndarray]:
        assert self.user_fn is not None
        raw = self.user_fn(size, seed)
        out = {}
        for spec in self.inputs:
            if spec.name not in raw:
                raise SpecError("sample_inputs", sorted(raw), f"a dict with every input ({spec.name} missing)")
            value = raw[spec.name]
            arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if arr.dtype != spec.dtype.numpy:
                raise SpecError(f"sample_inputs.{spec.name}.dtype", arr.dtype.name, spec.dtype.numpy.name)
            out[spec.name] = arr
        return out
