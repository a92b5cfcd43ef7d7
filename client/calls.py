"""What the sync and asyncio model clients share: preparing a call, splitting batches, reading results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import (
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    ServerUnavailableError,
    TritonClientError,
    UsageError,
)
from .model_info import ModelInfo
from .shared_memory import RegionPool, ShmPlan, output_sizes, plan, read_output
from .transport import RequestOptions


def check_client_options(timeout_s: float | None, max_concurrency: int | None) -> None:
    """Deadline and concurrency, of a client or of one call (None: the default), refused before sending."""
    if timeout_s is not None and (isinstance(timeout_s, bool) or not timeout_s > 0):
        raise UsageError(f"timeout_s: got {timeout_s!r}, expected seconds > 0 (or None: no deadline)")
    if max_concurrency is not None and (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise UsageError(f"max_concurrency: got {max_concurrency!r}, expected an integer >= 1")


def merge_inputs(info: ModelInfo, inputs: Mapping[str, Any] | None, named: dict[str, Any]) -> Mapping[str, Any]:
    if inputs is not None and not isinstance(inputs, Mapping):
        names = ", ".join(t.name for t in info.inputs)
        raise InvalidInputError(f"inputs of model '{info.name}': got {type(inputs).__name__}, expected a dict of "
                                f"input name -> array (inputs: {names})")
    if not inputs:
        return named
    if not named:
        return inputs
    both = sorted(set(inputs or {}) & set(named))
    if both:
        raise InvalidInputError(f"input '{both[0]}' of model '{info.name}': given twice (in the dict and by name)")
    return {**(inputs or {}), **named}


def request_options(headers: Mapping[str, str], call_headers: Mapping[str, str] | None,
                    **fields: Any) -> RequestOptions:
    return RequestOptions(headers={**headers, **(call_headers or {})}, **fields)


def call_options(default: RequestOptions, headers: Mapping[str, str], call_headers: Mapping[str, str] | None, *,
                 server_timeout_us: int | None, **fields: Any) -> RequestOptions:
    """One call's options: the model client's shared ``default`` unless the call sets any (the hot path)."""
    if call_headers or server_timeout_us is not None or any(fields.values()):
        return request_options(headers, call_headers, server_timeout_us=server_timeout_us, **fields)
    return default


def add_batch_dim(info: ModelInfo, inputs: Mapping[str, Any]) -> dict[str, Any]:
    if not info.batching:
        raise InvalidInputError(f"model '{info.name}' does not batch (max_batch_size 0): use infer()")
    return {name: np.asarray(value)[None] for name, value in inputs.items()}


def require_samples(info: ModelInfo, arrays: Mapping[str, NDArray[Any]]) -> None:
    """A batch of 0 samples is refused before it reaches Triton (which would reject it or run nothing)."""
    if not info.batching:
        return
    for name, array in arrays.items():
        if array.ndim and array.shape[0] == 0:
            raise InvalidInputError(f"input '{name}' of model '{info.name}': a batch of 0 samples, "
                                    "expected at least 1")


def concat(parts: Sequence[dict[str, NDArray[Any]]]) -> dict[str, NDArray[Any]]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if len(parts) > 1 else parts[0]


def checked_chunks(info: ModelInfo, inputs: Mapping[str, Any], cast: bool | str) -> list[dict[str, NDArray[Any]]]:
    """For infer_batch: the inputs split along the batch into checked pieces of at most max_batch_size."""
    if not info.batching:
        return [info.check_inputs(inputs, cast)]
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    sizes = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidInputError(f"model '{info.name}': inputs disagree on the batch size: {sizes}")
    total = next(iter(sizes.values()), 0)
    if total == 0:
        require_samples(info, arrays)
    step = info.max_batch_size
    return [info.check_inputs({k: v[s : s + step] for k, v in arrays.items()}, cast)
            for s in range(0, max(total, 1), step)]


def shm_plan(pool: RegionPool | None, info: ModelInfo, arrays: dict[str, NDArray[Any]],
             names: list[str]) -> ShmPlan | None:
    if pool is None:
        return None
    batch = len(next(iter(arrays.values()))) if info.batching and arrays else None
    return plan(pool, arrays, output_sizes(list(info.outputs), names, batch))


def _output_meta(result: Any, name: str) -> tuple[list[int], str]:
    meta = result.get_output(name)
    if isinstance(meta, dict):  # HTTP
        return [int(d) for d in meta["shape"]], meta["datatype"]
    return [int(d) for d in meta.shape], meta.datatype  # gRPC protobuf


def extract(result: Any, names: list[str], shm: ShmPlan | None, pool: RegionPool | None) -> dict[str, NDArray[Any]]:
    out = {}
    for name in names:
        if shm is not None and pool is not None and name in shm.outputs:
            shape, datatype = _output_meta(result, name)
            out[name] = read_output(pool, shm.handles[name], datatype, shape)
        else:
            out[name] = result.as_numpy(name)
    return out


def never_ready(model: str, version: str, index: Sequence[Mapping[str, Any]]) -> TritonClientError | None:
    """Why ``model`` (``version``) will not become ready by waiting, from the repository index: not in the
    repository, a version the server does not serve, or a load that failed. None while it may still (loading,
    or unloaded in explicit mode, where someone may load it)."""
    entries = [m for m in index if m.get("name") == model]
    if not entries:
        known = ", ".join(sorted({str(m.get("name", "")) for m in index})) or "none"
        return ModelNotFoundError(f"model '{model}': not in the server's repository (it has: {known})")
    if any(m.get("state") in ("LOADING", "UNLOADING") for m in entries):
        return None
    ready = sorted(str(m.get("version")) for m in entries if m.get("state") == "READY")
    if version and ready and str(version) not in ready:
        return ModelNotFoundError(f"model '{model}': version {version} is not served (served: {', '.join(ready)})")
    failed = [m for m in entries if m.get("state") == "UNAVAILABLE" and m.get("reason") not in (None, "", "unloaded")
              and (not version or str(m.get("version")) == str(version))]
    if failed and not ready:
        return ModelNotReadyError(f"model '{model}': failed to load: {failed[0]['reason']}")
    return None


def not_ready_error(model: str | None, timeout_s: float, last: TritonClientError | None,
                    index: Sequence[Mapping[str, Any]]) -> TritonClientError:
    """What ``wait_until_ready`` raises when its time is up: the model's state, or that nothing answered."""
    what = f"model '{model}'" if model else "server"
    if isinstance(last, (ServerUnavailableError, InferenceTimeoutError)):
        return ServerUnavailableError(f"{what} not ready after {timeout_s:.0f} s: the server was unreachable "
                                      f"(stopped, died or not started?); last error: {last}")
    states = "; ".join(f"{m.get('state')}: {m.get('reason', '')}".strip().rstrip(":")
                       for m in index if m.get("name") == model)
    return ModelNotReadyError(f"{what} not ready after {timeout_s:.0f} s" + (f" ({states})" if states else ""))
