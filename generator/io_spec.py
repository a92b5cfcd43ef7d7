"""Model inputs and outputs: names, data types and dims, declared or inferred from example inputs.

Dims follow Triton's config convention: without the batch dimension when the model batches
(``max_batch_size > 0``), ``-1`` for a variable dim. ``SampleFactory`` makes input batches of any size
(varying the variable dims) for export and verification.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from tritonize.core.datatypes import DataType, from_numpy, parse_data_type
from tritonize.core.log import logger

from .config_spec import TENSOR_NAME_RE, TensorConfig, check_name
from .errors import SpecError

_log = logger(__name__)

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


def resized(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """``array`` cut or repeated cyclically along ``axis`` to ``size`` (token ids stay token ids)."""
    return np.take(array, np.arange(size) % array.shape[axis], axis=axis)


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


def probe_dims(
    examples: Mapping[str, np.ndarray],
    declared: Mapping[str, DeclaredTensor],
    batching: bool,
    run: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
) -> dict[str, DeclaredTensor]:
    """Declarations freeing the dims that examples would fix, where the model also runs at other sizes.

    Integer inputs (token ids, masks): dims of one size change together (ids and their mask); where the model
    runs and its outputs keep their count, ranks and batch, those dims become -1 (logged). Float inputs (images)
    keep the example's dims; where some also run at other sizes, one warning names them and the flag that frees
    them. Declared dims always win: only undeclared inputs are probed."""
    free = [n for n in examples if declared.get(n, DeclaredTensor(n)).dims is None]
    offset = 1 if batching else 0

    def outputs(batch: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return run(batch)
        except Exception:
            return None

    reference = outputs(examples)
    if reference is None or not free:
        return {}  # a model that fails on its own example is reported by the load that follows

    def runs(changes: list[tuple[str, int]], size: int) -> bool:
        batch = dict(examples)
        for name, axis in changes:
            batch[name] = resized(batch[name], axis + offset, size)
        got = outputs(batch)
        return got is not None and len(got) == len(reference) and all(
            a.ndim == b.ndim and (not batching or a.shape[:1] == b.shape[:1]) for a, b in zip(got, reference))

    def other(size: int) -> int:
        return size + max(1, size // 3)

    variable: dict[str, set[int]] = {}
    ints = [n for n in examples if examples[n].dtype.kind in "iub"]
    dims = {n: list(model_dims(examples[n].shape, batching)) for n in examples}
    for size in sorted({d for n in ints if n in free for d in dims[n] if d > 1}):  # a length-1 dim: no sequence
        changes = [(n, i) for n in ints for i, d in enumerate(dims[n])
                   if d == size and (n in free or (declared[n].dims or ())[i:i + 1] == (-1,))]
        if not runs(changes, other(size)):
            continue
        for name, i in changes:
            if name in free:
                variable.setdefault(name, set()).add(i)
        freed = [n for n in examples if n in free and any(c[0] == n for c in changes)]
        example = freed[0]
        _log.info(f"inputs {', '.join(freed)}: dims of size {size} are variable (the model ran at {size} and "
                  f"{other(size)}); --input {example}:{examples[example].dtype.name}:"
                  f"{','.join(map(str, dims[example]))} keeps the example's")
    for name in free:
        if examples[name].dtype.kind != "f":
            continue
        movable = [i for i, d in enumerate(dims[name]) if runs([(name, i)], other(d))]
        if movable:
            flag = ",".join("-1" if i in movable else str(d) for i, d in enumerate(dims[name]))
            _log.warning(f"inputs {name} dims {dims[name]} are fixed at the example's; the model also runs at other "
                         f"sizes of {', '.join(f'dims[{i}]' for i in movable)}: --input "
                         f"{name}:{examples[name].dtype.name}:{flag} frees them")
    result = {}
    for name, axes in variable.items():
        base = declared.get(name, DeclaredTensor(name))
        freed_dims = tuple(-1 if i in axes else d for i, d in enumerate(dims[name]))
        result[name] = DeclaredTensor(name, base.dtype, freed_dims, base.range)
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
                picked = resized(picked, axis, target)
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
